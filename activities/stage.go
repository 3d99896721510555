package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
)

// ApplicationError types of the activities' own failures.
const (
	// InvalidInputType is the type of input that cannot be fetched. It is
	// never retried.
	InvalidInputType = "InvalidInput"
	// WorkerStoppingType is a chunk given back by a worker that is shutting
	// down; it is retried on another worker, from its checkpoint.
	WorkerStoppingType = "WorkerStopping"
)

// ErrInvalidInput is InvalidInputType.
//
// Deprecated: use InvalidInputType; the name says it is a type, not an error.
const ErrInvalidInput = InvalidInputType

// MaxURLs is the most URLs one batch takes.
const MaxURLs = 1_000_000

// StageRequest asks for a large batch's URLs to be checked and split into
// chunk files, so no workflow ever holds them all.
type StageRequest struct {
	Prefix string `json:"prefix"`
	// URLs inline, or URLsFile: the key of a text file in the blob store,
	// one URL per line, blank lines and # comments ignored.
	URLs      []string `json:"urls,omitempty"`
	URLsFile  string   `json:"urls_file,omitempty"`
	ChunkSize int      `json:"chunk_size"`
}

// StageResult counts the staged URLs and chunks.
type StageResult struct {
	Count  int `json:"count"`
	Chunks int `json:"chunks"`
}

// StageURLs checks every URL and writes the chunk files. A bad URL fails
// with InvalidInput naming it; then nothing is left behind.
func (f *Fetcher) StageURLs(ctx context.Context, req StageRequest) (*StageResult, error) {
	if req.ChunkSize <= 0 {
		return nil, temporal.NewNonRetryableApplicationError("chunk size must be positive", InvalidInputType, nil)
	}
	next, where, closeSrc, err := f.urlSource(ctx, req)
	if err != nil {
		return nil, err
	}
	defer closeSrc()

	var (
		count, chunks int
		w             blobstore.Writer
		bw            *bufio.Writer
	)
	abort := func() {
		if w != nil {
			_ = w.Abort()
		}
		_ = f.Store.DeletePrefix(ctx, req.Prefix+"/urls")
	}
	for {
		raw, pos, ok, err := next()
		if err != nil {
			abort()
			return nil, err
		}
		if !ok {
			break
		}
		if err := CheckURL(raw); err != nil {
			abort()
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", where(pos), err), InvalidInputType, nil)
		}
		if count >= MaxURLs {
			abort()
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls: over the limit of %d per batch", MaxURLs), InvalidInputType, nil)
		}
		if count%req.ChunkSize == 0 {
			if err := ctx.Err(); err != nil {
				// Canceled, or the server gave up on this attempt (a frozen
				// worker woke up): stop writing. Nothing is deleted: a
				// live attempt may be writing the same files.
				if w != nil {
					_ = w.Abort()
				}
				return nil, err
			}
			if w != nil {
				if err := flushCommit(bw, w); err != nil {
					abort()
					return nil, err
				}
			}
			if w, err = f.Store.Create(ctx, URLsKey(req.Prefix, chunks)); err != nil {
				abort()
				return nil, err
			}
			bw = bufio.NewWriterSize(w, 64<<10)
			chunks++
			if chunks%100 == 0 {
				activity.RecordHeartbeat(ctx, chunks)
			}
		}
		bw.WriteString(raw) //nolint:errcheck // checked at Flush
		bw.WriteByte('\n')  //nolint:errcheck
		count++
	}
	if count == 0 {
		abort()
		return nil, temporal.NewNonRetryableApplicationError("urls: must list at least one URL", InvalidInputType, nil)
	}
	if err := flushCommit(bw, w); err != nil {
		abort()
		return nil, err
	}
	return &StageResult{Count: count, Chunks: chunks}, nil
}

func flushCommit(bw *bufio.Writer, w blobstore.Writer) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit()
}

// urlSource iterates the request's URLs; where names a position for errors.
func (f *Fetcher) urlSource(ctx context.Context, req StageRequest) (next func() (string, int, bool, error), where func(int) string, closeSrc func(), err error) {
	if req.URLsFile == "" {
		i := 0
		return func() (string, int, bool, error) {
				if i >= len(req.URLs) {
					return "", 0, false, nil
				}
				i++
				return req.URLs[i-1], i - 1, true, nil
			}, func(pos int) string { return fmt.Sprintf("urls[%d]", pos) },
			func() {}, nil
	}
	r, err := f.Store.Open(ctx, req.URLsFile)
	if err != nil {
		if errors.Is(err, blobstore.ErrNotFound) {
			return nil, nil, nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls_file: %q is not in the blob store%s", req.URLsFile, f.describeStore()), InvalidInputType, nil)
		}
		return nil, nil, nil, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxURLLength+1024)
	line := 0
	return func() (string, int, bool, error) {
			for sc.Scan() {
				line++
				s := strings.TrimSpace(sc.Text())
				if i := strings.Index(s, "#"); i == 0 || (i > 0 && (s[i-1] == ' ' || s[i-1] == '\t')) {
					s = strings.TrimSpace(s[:i])
				}
				if s != "" {
					return s, line, true, nil
				}
			}
			if err := sc.Err(); err != nil {
				return "", line, false, temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls_file line %d: %v", line+1, err), InvalidInputType, nil)
			}
			return "", 0, false, nil
		}, func(pos int) string { return fmt.Sprintf("urls_file line %d", pos) },
		func() { r.Close() }, nil
}

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
	// Store is the identity of the blob store holding Key.
	Store string `json:"store,omitempty"`
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
	count := func(r *Result) {
		if r.Outcome == OutcomeOK {
			out.OK++
		} else {
			out.Failed++
		}
		if r.Outcome == OutcomeCanceled {
			out.Canceled++
		}
	}
	for c := 0; c < req.Chunks; c++ {
		if c%50 == 0 {
			activity.RecordHeartbeat(ctx, c)
		}
		found, err := copyResults(ctx, f.Store, ResultsKey(req.Prefix, c), c, enc, count)
		if err == nil && !found {
			found, err = copyResults(ctx, f.Store, StoppedResultsKey(req.Prefix, c), c, enc, count)
		}
		if err != nil {
			return nil, err
		}
		if found {
			continue
		}
		tasks, err := f.readURLs(ctx, URLsKey(req.Prefix, c), c*req.ChunkSize)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
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
			count(&res)
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

// copyResults appends a chunk's results file to enc, if there is one.
func copyResults(ctx context.Context, store blobstore.Store, key string, chunk int, enc *json.Encoder, count func(*Result)) (bool, error) {
	r, err := store.Open(ctx, key)
	if errors.Is(err, blobstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	for {
		var res Result
		if err := dec.Decode(&res); err == io.EOF {
			return true, nil
		} else if err != nil {
			return false, fmt.Errorf("reading results of chunk %d: %w", chunk, err)
		}
		count(&res)
		if err := enc.Encode(&res); err != nil {
			return false, err
		}
	}
}
