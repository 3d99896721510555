package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// stoppedResult is the Result of a URL of a chunk that did not complete:
// its fetch's final word, or, for a body fetched but never hashed, the
// given outcome and message (a fetched body is not an ok result until its
// hash is known).
func stoppedResult(it Fetched, outcome, msg string) Result {
	r := it.Final()
	if it.Outcome == "" {
		r.Outcome, r.Error = outcome, msg
	}
	return r
}

// writeStopped records the results of a staged chunk canceled during its
// fetch. It runs after the activity's context is canceled, on a context of
// its own.
func writeStopped(ctx context.Context, store blobstore.Store, prefix string, chunk, from int, items []Fetched) error {
	results := make([]Result, len(items))
	for i, it := range items {
		results[i] = stoppedResult(it, OutcomeCanceled, "canceled before hashing")
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return writeResults(wctx, store, StoppedResultsKeyFrom(prefix, chunk, from), results)
}

// ChunkFailure asks for the results of a staged chunk whose activities
// finally failed to be recorded: one record for the chunk, however many
// URLs it has.
type ChunkFailure struct {
	Prefix string `json:"prefix"`
	Chunk  int    `json:"chunk"`
	First  int    `json:"first"`
	// Items are what is known of the chunk's URLs (their fetch's final
	// word, or a fetched body); they may be none.
	Items []Fetched `json:"items,omitempty"`
	// Outcome and Error are the result of every other URL of the chunk.
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
	// From and N: only the part of the chunk from URL From (when after
	// First), N URLs long (0: to its end), is recorded: the chunk was
	// fetched in parts (see FetchChunkRequest.Budget).
	From int `json:"from,omitempty"`
	N    int `json:"n,omitempty"`
}

// RecordChunkFailure writes the results of a chunk that failed: each URL
// with its own final word when one is known, the chunk's error otherwise.
func (f *Fetcher) RecordChunkFailure(ctx context.Context, req ChunkFailure) error {
	tasks, err := f.readURLs(ctx, URLsKey(req.Prefix, req.Chunk), req.First)
	if err != nil {
		return err
	}
	if skip := req.From - req.First; skip > 0 {
		tasks = tasks[min(skip, len(tasks)):]
	}
	if req.N > 0 && req.N < len(tasks) {
		tasks = tasks[:req.N]
	}
	known := make(map[int]Fetched, len(req.Items))
	for _, it := range req.Items {
		known[it.Index] = it
	}
	msg := TruncateError(req.Error)
	results := make([]Result, len(tasks))
	for i, t := range tasks {
		if it, ok := known[t.Index]; ok {
			results[i] = stoppedResult(it, req.Outcome, msg)
		} else {
			results[i] = Result{Outcome: req.Outcome, Error: msg}
		}
		results[i].URL = t.URL
	}
	if err := writeResults(ctx, f.Store, StoppedResultsKeyFrom(req.Prefix, req.Chunk, piece(req.First, req.From)), results); err != nil {
		return fmt.Errorf("recording the results of chunk %d: %w", req.Chunk, err)
	}
	return nil
}
