package client

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"iter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// ErrNoBody is the error of Body for a result without a kept body.
var ErrNoBody = errors.New("the result has no kept body (body_key): the batch did not keep bodies, or the URL did not succeed")

// Results waits until the batch ends and yields its results in input
// order, from the output or from its results file in the blob store, read
// as a stream: none is held. A batch that failed or was canceled with
// its output so far yields those results (the URLs it never finished
// canceled) and then its error (*BatchFailedError, *CanceledError); one
// that ended without output (*InvalidInputError) yields its error alone.
// A results file that cannot be read yields the error it met, after the
// results read so far. Stopping the loop early closes the file.
func (b *Batch) Results(ctx context.Context) iter.Seq2[workflows.Result, error] {
	return func(yield func(workflows.Result, error) bool) {
		out, err := b.Wait(ctx)
		if err != nil {
			partial := PartialOutput(err)
			if partial == nil {
				yield(workflows.Result{}, err)
				return
			}
			out = *partial
		}
		for r, rerr := range b.c.Results(ctx, out) {
			if !yield(r, rerr) || rerr != nil {
				return
			}
		}
		if err != nil {
			yield(workflows.Result{}, err)
		}
	}
}

// PartialOutput is the output a batch's error carries: that of a
// *BatchFailedError or a *CanceledError, or nil.
func PartialOutput(err error) *workflows.Output {
	var failed *BatchFailedError
	var canceled *CanceledError
	switch {
	case errors.As(err, &failed):
		return failed.Output
	case errors.As(err, &canceled):
		return canceled.Output
	}
	return nil
}

// Results yields the results of a batch's output in input order: its
// inline Results, or the JSON lines of its ResultsFile in the blob store,
// read as a stream. A results file in another store than Options.Store
// (Output.BlobStore names the workers') is an error saying so.
func (c *Client) Results(ctx context.Context, out workflows.Output) iter.Seq2[workflows.Result, error] {
	return func(yield func(workflows.Result, error) bool) {
		if out.ResultsFile == "" || out.Results != nil {
			for _, r := range out.Results {
				if !yield(r, nil) {
					return
				}
			}
			return
		}
		if err := c.CheckResultsStore(ctx, out); err != nil {
			yield(workflows.Result{}, err)
			return
		}
		r, err := c.opts.Store.Open(ctx, out.ResultsFile)
		if err != nil {
			yield(workflows.Result{}, fmt.Errorf("reading the results file %s: %w", out.ResultsFile, err))
			return
		}
		defer r.Close()
		dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
		for line := 1; ; line++ {
			var res workflows.Result
			if err := dec.Decode(&res); err == io.EOF {
				return
			} else if err != nil {
				yield(workflows.Result{}, fmt.Errorf("reading the results file %s, result %d: %w", out.ResultsFile, line, err))
				return
			}
			if !yield(res, nil) {
				return
			}
		}
	}
}

// StoreMismatchError is a results file in another blob store than
// Options.Store: the workers', which the output names.
type StoreMismatchError struct {
	// File is the results file (Output.ResultsFile).
	File string
	// Workers is the identity of the workers' store (Output.BlobStore);
	// Mine that of Options.Store (blobstore.ID).
	Workers, Mine string
}

func (e *StoreMismatchError) Error() string {
	return fmt.Sprintf("the results (%s) are in the workers' blob store (identity %s), not in Options.Store (identity %s)", e.File, e.Workers, e.Mine)
}

// CheckResultsStore tells, before Results reads them, whether out's
// results can be read: nil for inline results or a results file in
// Options.Store; a *StoreMismatchError for one in another store.
func (c *Client) CheckResultsStore(ctx context.Context, out workflows.Output) error {
	if out.ResultsFile == "" || out.Results != nil {
		return nil
	}
	if c.opts.Store == nil {
		return fmt.Errorf("the results are in the workers' blob store (%s): Options.Store is needed to read them", out.ResultsFile)
	}
	mine, err := blobstore.ID(ctx, c.opts.Store)
	if err == nil && mine != "" && out.BlobStore != "" && mine != out.BlobStore {
		return &StoreMismatchError{File: out.ResultsFile, Workers: out.BlobStore, Mine: mine}
	}
	return nil
}

// Body opens the body a batch kept for r (keep_bodies: r.BodyKey), as the
// server sent it. Reading it to the end checks it against r's sha256 and
// size: a body that differs ends in an error, not io.EOF. A result with
// no kept body is ErrNoBody; a body no longer kept (expired, removed by
// `starter gc`) an error wrapping blobstore.ErrNotFound.
func (c *Client) Body(ctx context.Context, r workflows.Result) (io.ReadCloser, error) {
	if r.BodyKey == "" || !activities.Succeeded(r.Outcome) {
		return nil, ErrNoBody
	}
	if c.opts.Store == nil {
		return nil, fmt.Errorf("the body of %s (%s) is in the workers' blob store: Options.Store is needed to read it", r.URL, r.BodyKey)
	}
	rc, err := c.opts.Store.Open(ctx, r.BodyKey)
	if errors.Is(err, blobstore.ErrNotFound) {
		return nil, fmt.Errorf("the body of %s (%s) is no longer in the blob store: expired, or removed by `starter gc`: %w", r.URL, r.BodyKey, err)
	} else if err != nil {
		return nil, fmt.Errorf("the body of %s (%s): %w", r.URL, r.BodyKey, err)
	}
	return &checkedBody{rc: rc, h: sha256.New(), r: r}, nil
}

// Body opens the kept body of one of the batch's results (see
// Client.Body).
func (b *Batch) Body(ctx context.Context, r workflows.Result) (io.ReadCloser, error) {
	return b.c.Body(ctx, r)
}

// checkedBody reads a kept body and checks it at its end.
type checkedBody struct {
	rc io.ReadCloser
	h  hash.Hash
	n  int64
	r  workflows.Result
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("reading the kept body of %s (%s): %w", b.r.URL, b.r.BodyKey, err)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(b.h.Sum(nil)); got != b.r.SHA256 || b.n != b.r.Size {
			return n, fmt.Errorf("the kept body of %s (%s) has sha256 %s and %d bytes, its result says %s and %d", b.r.URL, b.r.BodyKey, got, b.n, b.r.SHA256, b.r.Size)
		}
	}
	return n, err
}

func (b *checkedBody) Close() error { return b.rc.Close() }
