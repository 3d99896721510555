package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// inlineRequestsBudget bounds the URLs' own request fields sent in the
// input; a list with more goes to the blob store (Temporal caps a payload
// at 2 MB).
const inlineRequestsBudget = 256 << 10

// pendingBodyKey stands for the key of StartOptions.Body while the input
// is checked, before the body is in the blob store.
const pendingBodyKey = "inputs/body"

// ListInStore tells whether Start puts in's URL list in the blob store, as
// a urls_file: more than workflows.InlineLimit URLs, or URLs whose own
// request fields are too large for the workflow's input.
func ListInStore(in workflows.Input) bool {
	return len(in.URLs) > workflows.InlineLimit || ownBytes(in) > inlineRequestsBudget
}

// WriteList writes in's URLs to key in store as a urls_file reads them,
// one a line: a URL, or a JSON line with its own request fields.
func WriteList(ctx context.Context, store blobstore.Store, key string, in workflows.Input) error {
	return put(ctx, store, key, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		for i, u := range in.URLs {
			line := u
			if i < len(in.URLRequests) && in.URLRequests[i] != nil && !in.URLRequests[i].Empty() {
				b, err := json.Marshal(activities.URLEntry{URL: u, RequestFields: *in.URLRequests[i]})
				if err != nil {
					return fmt.Errorf("urls[%d]: %w", i, err)
				}
				line = string(b)
			}
			bw.WriteString(line) //nolint:errcheck // checked at Flush
			bw.WriteByte('\n')   //nolint:errcheck
		}
		return bw.Flush()
	})
}

// uploads are the input files Start put in the blob store for a batch.
type uploads struct {
	list, previous, body string
}

func (u uploads) keys() []string {
	var keys []string
	for _, k := range []string{u.list, u.previous, u.body} {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// drop removes the uploads of a batch that will never read them.
func (u uploads) drop(store blobstore.Store) {
	for _, k := range u.keys() {
		_ = store.DeletePrefix(context.Background(), k)
	}
}

// uploadInputs puts in the blob store what goes through it: a long URL
// list, opts.Body and opts.Previous, each under a key no other start has,
// and marks them the batch's own (remove_inputs). The input files the
// input names (urls_file, previous_file, the body's key), which the batch
// then owns too, are copied to keys of its own unless the input already
// hands them over.
func (c *Client) uploadInputs(ctx context.Context, in *workflows.Input, id string, opts StartOptions) (up uploads, err error) {
	long := ListInStore(*in)
	if !long && opts.Body == nil && opts.Previous == nil {
		return up, nil
	}
	store := c.opts.Store
	if store == nil {
		what := "StartOptions.Body or Previous"
		if long {
			what = fmt.Sprintf("%d URLs", len(in.URLs))
		}
		return up, fmt.Errorf("a batch of %s goes through the workers' blob store: Options.Store is needed", what)
	}
	defer func() {
		if err != nil {
			up.drop(store)
		}
	}()
	own := in.RemoveInputs // the input's files are the batch's already
	if long {
		up.list = uploadKey(id, ".txt")
		if err := WriteList(ctx, store, up.list, *in); err != nil {
			return up, fmt.Errorf("writing the URL list to the blob store: %w", err)
		}
		in.URLs, in.URLRequests, in.URLsFile = nil, nil, up.list
	} else if in.URLsFile, err = c.inputFile(ctx, id, ".txt", nil, in.URLsFile, own, &up.list); err != nil {
		return up, fmt.Errorf("urls_file: %w", err)
	}
	if in.PreviousFile, err = c.inputFile(ctx, id, ".previous.jsonl", opts.Previous, in.PreviousFile, own, &up.previous); err != nil {
		return up, fmt.Errorf("writing the earlier results (previous_file) to the blob store: %w", err)
	}
	if in.Body != nil {
		body := *in.Body
		if body.Key, err = c.inputFile(ctx, id, ".body", opts.Body, body.Key, own, &up.body); err != nil {
			return up, fmt.Errorf("writing the request body to the blob store: %w", err)
		}
		in.Body = &body
	}
	in.RemoveInputs = true
	return up, nil
}

// inputFile is the key of one of a batch's input files: src written to a
// key of its own, or the blob from copied to one unless the batch owns it
// already (own); from when neither. *uploaded is set to the key written.
func (c *Client) inputFile(ctx context.Context, id, suffix string, src io.Reader, from string, own bool, uploaded *string) (string, error) {
	switch {
	case src != nil:
		*uploaded = uploadKey(id, suffix)
		return *uploaded, put(ctx, c.opts.Store, *uploaded, func(w io.Writer) error {
			_, err := io.Copy(w, src)
			return err
		})
	case from != "" && !own:
		*uploaded = uploadKey(id, suffix)
		return *uploaded, copyBlob(ctx, c.opts.Store, from, *uploaded)
	}
	return from, nil
}

// ownBytes is the size of the URLs' own request fields as JSON.
func ownBytes(in workflows.Input) int {
	n := 0
	for _, f := range in.URLRequests {
		if f != nil {
			b, _ := json.Marshal(f)
			n += len(b)
		}
	}
	return n
}

// put writes the blob key with what fill writes, whole or not at all.
func put(ctx context.Context, store blobstore.Store, key string, fill func(io.Writer) error) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck // a no-op after Commit
	if err := fill(w); err != nil {
		return err
	}
	return w.Commit()
}

// copyBlob copies the blob from to the key to.
func copyBlob(ctx context.Context, store blobstore.Store, from, to string) error {
	r, err := store.Open(ctx, from)
	if err != nil {
		return err
	}
	defer r.Close()
	return put(ctx, store, to, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// uploadKey is a key of its own for one upload of a batch's input.
func uploadKey(id, suffix string) string { return blobstore.UniqueKey("inputs/", id, suffix) }
