package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
	// Previous, or PreviousFile (the key of an earlier results file, JSON
	// lines), are earlier results: each URL's is joined to it, in files
	// of its chunk (PrevKey). PreviousOptional: a PreviousFile not in
	// the store is no earlier results, not an error.
	Previous         []Result `json:"previous,omitempty"`
	PreviousFile     string   `json:"previous_file,omitempty"`
	PreviousOptional bool     `json:"previous_optional,omitempty"`
}

// StageResult counts the staged URLs and chunks.
type StageResult struct {
	Count  int `json:"count"`
	Chunks int `json:"chunks"`
	// PrevParts is how many parts of earlier results each chunk has
	// (PrevKey), 0 for none.
	PrevParts int `json:"prev_parts,omitempty"`
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
		// Where each URL is, to join earlier results to it: the first
		// position of each URL's hash, and the others of a repeated one.
		first   map[uint64]int32
		repeats map[uint64][]int32
	)
	joining := len(req.Previous) > 0 || req.PreviousFile != ""
	if joining {
		first, repeats = map[uint64]int32{}, map[uint64][]int32{}
	}
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
		if joining {
			h := urlHash(raw)
			if _, ok := first[h]; ok {
				repeats[h] = append(repeats[h], int32(count))
			} else {
				first[h] = int32(count)
			}
		}
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
	out := &StageResult{Count: count, Chunks: chunks}
	if joining {
		parts, err := f.joinPrevious(ctx, req, func(u string) []int32 {
			h := urlHash(u)
			i, ok := first[h]
			if !ok {
				return nil
			}
			return append([]int32{i}, repeats[h]...)
		})
		if err != nil {
			abort()
			_ = f.Store.DeletePrefix(ctx, req.Prefix+"/prev")
			return nil, err
		}
		out.PrevParts = parts
	}
	return out, nil
}

func urlHash(u string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(u))
	return h.Sum64()
}

// prevBuffer bounds the earlier results joining holds before it writes
// them out as a part.
const prevBuffer = 16 << 20

// maxPreviousLine bounds one line of a previous_file.
const maxPreviousLine = 1 << 20

// joinPrevious reads the earlier results and writes, for each chunk, the
// ones of its URLs (matched by URL: where has the positions of a URL,
// perhaps of another URL of the same hash, which readPrev tells apart), in
// parts of at most prevBuffer. A URL given twice in the earlier results
// takes the later. It returns how many parts it wrote.
func (f *Fetcher) joinPrevious(ctx context.Context, req StageRequest, where func(string) []int32) (int, error) {
	buf := map[int][]byte{}
	held, parts := 0, 0
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		for chunk, b := range buf {
			w, err := f.Store.Create(ctx, PrevKey(req.Prefix, chunk, parts))
			if err != nil {
				return err
			}
			if _, err := w.Write(b); err != nil {
				_ = w.Abort()
				return err
			}
			if err := w.Commit(); err != nil {
				return err
			}
		}
		clear(buf)
		held = 0
		parts++
		activity.RecordHeartbeat(ctx, parts)
		return nil
	}
	add := func(r Result) error {
		p := PrevOf(r)
		if p == nil {
			return nil
		}
		for _, i := range where(r.URL) {
			line, err := json.Marshal(IndexedPrev{Index: int(i), URL: r.URL, Prev: *p})
			if err != nil {
				return err
			}
			c := int(i) / req.ChunkSize
			buf[c] = append(append(buf[c], line...), '\n')
			held += len(line) + 1
		}
		if held > prevBuffer {
			return flush()
		}
		return nil
	}
	if req.PreviousFile == "" {
		for i, r := range req.Previous {
			if err := CheckPrevious(r); err != nil {
				return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("previous[%d]: %v", i, err), InvalidInputType, nil)
			}
			if err := add(r); err != nil {
				return 0, err
			}
		}
		return parts, flush()
	}
	rc, err := f.Store.Open(ctx, req.PreviousFile)
	if errors.Is(err, blobstore.ErrNotFound) {
		if req.PreviousOptional {
			return 0, nil
		}
		return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("previous_file: %q is not in the blob store%s", req.PreviousFile, f.describeStore()), InvalidInputType, nil)
	}
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 256<<10)
	for line := 1; ; line++ {
		b, err := readLine(br, maxPreviousLine)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("previous_file line %d: %v", line, err), InvalidInputType, nil)
		}
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("previous_file line %d: not a result: %v", line, err), InvalidInputType, nil)
		}
		if err := CheckPrevious(r); err != nil {
			return 0, temporal.NewNonRetryableApplicationError(fmt.Sprintf("previous_file line %d: %v", line, err), InvalidInputType, nil)
		}
		if err := add(r); err != nil {
			return 0, err
		}
		if line%10000 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return parts, flush()
}

// readLine reads one line of at most max bytes, without its newline.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadSlice('\n')
		line = append(line, b...)
		if len(line) > max {
			return nil, fmt.Errorf("longer than %d bytes", max)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
		return line[:len(line)-1], nil
	}
}

// CheckPrevious says what is wrong with an earlier result given as
// previous, or nil: it needs a URL, and what it says must be what a
// result holds.
func CheckPrevious(r Result) error {
	switch {
	case r.URL == "":
		return errors.New("no url")
	case len(r.URL) > MaxURLLength:
		return fmt.Errorf("url longer than %d bytes", MaxURLLength)
	case r.SHA256 != "" && !isHex64(r.SHA256):
		return fmt.Errorf("sha256 of %d characters is not 64 lower-case hexadecimal digits", len(r.SHA256))
	case r.Size < 0:
		return fmt.Errorf("size %d is negative", r.Size)
	case len(r.ETag) > 128 || len(r.LastModified) > 64 || len(r.ContentType) > 128 || len(r.BodyKey) > 256:
		return errors.New("an etag, last_modified, content_type or body_key longer than a result's")
	case !printable(r.ETag) || !printable(r.LastModified):
		return errors.New("an etag or last_modified with bytes other than printable ASCII")
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
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
	// NotModified and Changed count those results.
	NotModified int `json:"not_modified,omitempty"`
	Changed     int `json:"changed,omitempty"`
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
		if Succeeded(r.Outcome) {
			out.OK++
		} else {
			out.Failed++
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
