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

func (u uploads) empty() bool { return len(u.keys()) == 0 }

// drop removes the uploads of a batch that will never read them.
func (u uploads) drop(store blobstore.Store) {
	for _, k := range u.keys() {
		_ = store.DeletePrefix(context.Background(), k)
	}
}

// read tells whether a batch started with in reads these uploads.
func (u uploads) read(in workflows.Input) bool {
	body := ""
	if in.Body != nil {
		body = in.Body.Key
	}
	return in.URLsFile == u.list && (u.previous == "" || in.PreviousFile == u.previous) && (u.body == "" || body == u.body)
}

// uploadInputs puts a long URL list in the blob store, as a urls_file the
// batch owns (remove_inputs), under a key no other start has. The
// batch's other input files (previous_file, the body's key), which it
// then owns too, are copied to keys of its own unless the input already
// hands them over.
func (c *Client) uploadInputs(ctx context.Context, in *workflows.Input, id string) (up uploads, err error) {
	if len(in.URLs) <= workflows.InlineLimit && ownBytes(*in) <= inlineRequestsBudget {
		return up, nil
	}
	store := c.opts.Store
	if store == nil {
		return up, fmt.Errorf("a batch of %d URLs goes through the workers' blob store: Options.Store is needed", len(in.URLs))
	}
	defer func() {
		if err != nil {
			up.drop(store)
		}
	}()
	up.list = uploadKey(id, ".txt")
	if err := writeList(ctx, store, up.list, *in); err != nil {
		return up, fmt.Errorf("writing the URL list to the blob store: %w", err)
	}
	if !in.RemoveInputs {
		if in.PreviousFile != "" {
			up.previous = uploadKey(id, ".previous.jsonl")
			if err := copyBlob(ctx, store, in.PreviousFile, up.previous); err != nil {
				return up, fmt.Errorf("previous_file: %w", err)
			}
			in.PreviousFile = up.previous
		}
		if in.Body != nil && in.Body.Key != "" {
			up.body = uploadKey(id, ".body")
			if err := copyBlob(ctx, store, in.Body.Key, up.body); err != nil {
				return up, fmt.Errorf("body: %w", err)
			}
			body := *in.Body
			body.Key = up.body
			in.Body = &body
		}
	}
	in.URLs, in.URLRequests, in.URLsFile, in.RemoveInputs = nil, nil, up.list, true
	return up, nil
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

// writeList writes in's URLs to key, one a line: a URL, or a JSON line
// with its own request fields.
func writeList(ctx context.Context, store blobstore.Store, key string, in workflows.Input) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck // a no-op after Commit
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
	if err := bw.Flush(); err != nil {
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
	w, err := store.Create(ctx, to)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck // a no-op after Commit
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Commit()
}

// uploadKey is a key of its own for one upload of a batch's input.
func uploadKey(id, suffix string) string { return blobstore.UniqueKey("inputs/", id, suffix) }
