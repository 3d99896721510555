package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/blobstore"
)

// AssembleRequest asks for a staged batch's results to be joined into one
// JSON-lines file, in input order.
type AssembleRequest struct {
	Prefix    string `json:"prefix"`
	Chunks    int    `json:"chunks"`
	ChunkSize int    `json:"chunk_size"`
	Dest      string `json:"dest"`
	// Known results for URLs whose chunk never wrote its file (the URL
	// that stopped a fail_fast batch): at most one per part.
	Known []IndexedResult `json:"known,omitempty"`
	// Failed are runs of chunks whose part (a child workflow) failed: a
	// URL of theirs with no results file gets the run's outcome and error.
	// Every other URL without a results file is canceled.
	Failed []FailedChunks `json:"failed,omitempty"`
	// Compare: the batch was given earlier results, joined to its chunks
	// in PrevParts parts (PrevKey): each result says whether it changed
	// (CompareWith), and with Carry (the batch runs a CPU step) a
	// not_modified one carries the earlier processed output.
	Compare   bool `json:"compare,omitempty"`
	PrevParts int  `json:"prev_parts,omitempty"`
	Carry     bool `json:"carry,omitempty"`
}

// FailedChunks is a run of chunks [From, To) that failed as one, and why.
type FailedChunks struct {
	From    int    `json:"from"`
	To      int    `json:"to"`
	Outcome string `json:"outcome"`
	Error   string `json:"error"`
}

// IndexedResult is a Result with its position in the input.
type IndexedResult struct {
	Index  int    `json:"i"`
	Result Result `json:"r"`
}

// AssembleResult counts the lines of the joined file.
type AssembleResult struct {
	Key    string `json:"key"`
	OK     int    `json:"ok"`
	Failed int    `json:"failed"`
	// Canceled counts the failed lines whose outcome is canceled.
	Canceled int `json:"canceled,omitempty"`
	// NotModified and Changed count those results.
	NotModified int `json:"not_modified,omitempty"`
	Changed     int `json:"changed,omitempty"`
	// Store is the identity of the blob store holding Key.
	Store string `json:"store,omitempty"`
	// Failures are the first FailureSample failed results (see SampleOf).
	Failures []Result `json:"failures,omitempty"`
}

// AssembleResults writes Dest from the chunk files. Chunks that never
// finished (a canceled or failed batch) appear as canceled lines.
func (f *Fetcher) AssembleResults(ctx context.Context, req AssembleRequest) (*AssembleResult, error) {
	known := map[int]Result{}
	for _, k := range req.Known {
		known[k.Index] = k.Result
	}
	w, err := f.Store.Create(ctx, req.Dest)
	if err != nil {
		return nil, err
	}
	defer w.Abort() //nolint:errcheck
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	out := &AssembleResult{Key: req.Dest, Store: f.StoreID}
	var earlier map[placed]*Earlier // the chunk's
	count := func(index int, r *Result) {
		if req.Compare {
			CompareWith(r, earlier[placed{index, r.URL}], req.Carry)
		}
		if Succeeded(r.Outcome) {
			out.OK++
		} else {
			out.Failed++
		}
		if s, ok := SampleOf(*r); ok && len(out.Failures) < FailureSample {
			out.Failures = append(out.Failures, s)
		}
		if r.Outcome == OutcomeNotModified {
			out.NotModified++
		}
		if r.Changed != nil && *r.Changed {
			out.Changed++
		}
		if r.Outcome == OutcomeCanceled {
			out.Canceled++
		}
	}
	for c := 0; c < req.Chunks; c++ {
		if c%50 == 0 {
			activity.RecordHeartbeat(ctx, c)
		}
		if req.Compare {
			if earlier, err = readEarlier(ctx, f.Store, req.Prefix, c, req.PrevParts); err != nil {
				return nil, err
			}
		}
		done, err := copyChunk(ctx, f.Store, req, c, enc, count)
		if err != nil {
			return nil, err
		}
		if done == req.ChunkSize {
			continue
		}
		tasks, err := f.readURLs(ctx, URLsKey(req.Prefix, c), c*req.ChunkSize)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks[min(done, len(tasks)):] { // the URLs with no results file
			res, ok := known[t.Index]
			if ok && res.URL == "" {
				res.URL = t.URL
			}
			if !ok {
				res = Result{URL: t.URL, Outcome: OutcomeCanceled, Error: "canceled: batch stopped"}
				for _, fc := range req.Failed {
					if c >= fc.From && c < fc.To {
						res.Outcome, res.Error = fc.Outcome, TruncateError(fc.Error)
					}
				}
			}
			count(t.Index, &res)
			if err := enc.Encode(&res); err != nil {
				return nil, err
			}
		}
	}
	if err := flushCommit(bw, w); err != nil {
		return nil, err
	}
	return out, nil
}

// copyChunk appends chunk c's results files to enc: the one from its
// start, then each part's from where the one before it ended (a chunk
// fetched in parts has a file per part), for as long as there is one. It
// returns how many URLs of the chunk they held.
func copyChunk(ctx context.Context, store blobstore.Store, req AssembleRequest, c int, enc *json.Encoder, count func(int, *Result)) (int, error) {
	done := 0
	for done < req.ChunkSize {
		from := 0
		if done > 0 {
			from = c*req.ChunkSize + done
		}
		at := func(i int, r *Result) { count(c*req.ChunkSize+done+i, r) }
		n, found, err := copyResults(ctx, store, ResultsKeyFrom(req.Prefix, c, from), c, enc, at)
		if err == nil && !found {
			n, found, err = copyResults(ctx, store, StoppedResultsKeyFrom(req.Prefix, c, from), c, enc, at)
		}
		if err != nil {
			return 0, err
		}
		if !found || n == 0 {
			break
		}
		done += n
	}
	return done, nil
}

// copyResults appends a results file to enc, if there is one, and says
// how many results it held. count gets each with its place in the file.
func copyResults(ctx context.Context, store blobstore.Store, key string, chunk int, enc *json.Encoder, count func(int, *Result)) (n int, found bool, err error) {
	r, err := store.Open(ctx, key)
	if errors.Is(err, blobstore.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	for {
		var res Result
		if err := dec.Decode(&res); err == io.EOF {
			return n, true, nil
		} else if err != nil {
			return 0, false, fmt.Errorf("reading results of chunk %d: %w", chunk, err)
		}
		count(n, &res)
		if err := enc.Encode(&res); err != nil {
			return 0, false, err
		}
		n++
	}
}

// CopyRequest asks for a blob to be copied.
type CopyRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// CopyBlob copies a blob (a batch's results file to where the next batch
// of its chain reads it). The copy replaces To whole, or not at all.
func (f *Fetcher) CopyBlob(ctx context.Context, req CopyRequest) error {
	stop := heartbeat(ctx, f.heartbeatEvery(), func() any { return nil })
	defer stop()
	r, err := f.Store.Open(ctx, req.From)
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := f.Store.Create(ctx, req.To)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck // after Commit, a no-op
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Commit()
}
