package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
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
	// the store, or one that cannot be read as results, is no earlier
	// results, not an error (StageResult.PreviousError says why).
	Previous         []Result `json:"previous,omitempty"`
	PreviousFile     string   `json:"previous_file,omitempty"`
	PreviousOptional bool     `json:"previous_optional,omitempty"`
	// Request is how the batch asks for its URLs, and Requests, parallel
	// to URLs (or nil), each URL's own: it goes into the chunk files.
	Request  *Request   `json:"request,omitempty"`
	Requests []*Request `json:"requests,omitempty"`
}

// StageResult counts the staged URLs and chunks.
type StageResult struct {
	Count  int `json:"count"`
	Chunks int `json:"chunks"`
	// PrevParts is how many parts of earlier results each chunk has
	// (PrevKey), 0 for none.
	PrevParts int `json:"prev_parts,omitempty"`
	// PreviousError says why optional earlier results (PreviousOptional)
	// that are in the store were not used: they cannot be read as
	// results. Every URL is then fetched in full.
	PreviousError string `json:"previous_error,omitempty"`
}

// StageURLs checks every URL and writes the chunk files, then joins the
// earlier results to them. A bad URL fails with InvalidInput naming it;
// then nothing is left behind.
func (f *Fetcher) StageURLs(ctx context.Context, req StageRequest) (*StageResult, error) {
	if req.ChunkSize <= 0 {
		return nil, temporal.NewNonRetryableApplicationError("chunk size must be positive", InvalidInputType, nil)
	}
	joining := len(req.Previous) > 0 || req.PreviousFile != ""
	var idx *urlIndex
	if joining {
		idx = &urlIndex{first: map[uint64]int32{}, repeats: map[uint64][]int32{}}
	}
	count, chunks, err := f.writeChunks(ctx, req, idx)
	if err != nil {
		return nil, err
	}
	out := &StageResult{Count: count, Chunks: chunks}
	if !joining {
		return out, nil
	}
	if out.PrevParts, out.PreviousError, err = f.joinPrevious(ctx, req, idx.positions); err != nil {
		_ = f.Store.DeletePrefix(ctx, req.Prefix+"/urls")
		_ = f.Store.DeletePrefix(ctx, req.Prefix+"/prev")
		return nil, err
	}
	return out, nil
}

// writeChunks checks each URL and writes them to chunk files of
// ChunkSize, noting where each one is in idx (when there is one). It
// returns how many URLs and chunks it wrote. A bad URL fails with
// InvalidInput naming it, and then, as after any other error, no chunk
// file is left; but when ctx ended (canceled, or the server gave up on
// this attempt: a frozen worker woke up) it only stops writing, as a live
// attempt may be writing the same files.
func (f *Fetcher) writeChunks(ctx context.Context, req StageRequest, idx *urlIndex) (count, chunks int, err error) {
	next, where, closeSrc, err := f.urlSource(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	defer closeSrc()
	cw := &chunkWriter{store: f.Store, ctx: ctx, prefix: req.Prefix}
	fail := func(err error) (int, int, error) {
		cw.abort()
		return 0, 0, err
	}
	for {
		raw, own, pos, ok, err := next()
		if err != nil {
			return fail(err)
		}
		if !ok {
			break
		}
		if err := CheckURL(raw); err != nil {
			return fail(temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", where(pos), err), InvalidInputType, nil))
		}
		if err := CheckMerged(MergeRequests(req.Request, own)); err != nil {
			return fail(temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", where(pos), err), InvalidInputType, nil))
		}
		if count >= MaxURLs {
			return fail(temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls: over the limit of %d per batch", MaxURLs), InvalidInputType, nil))
		}
		if count%req.ChunkSize == 0 {
			if err := ctx.Err(); err != nil {
				cw.stop()
				return 0, 0, err
			}
			if err := cw.next(); err != nil {
				return fail(err)
			}
		}
		cw.add(raw, own)
		idx.add(raw, count)
		count++
	}
	if count == 0 {
		return fail(temporal.NewNonRetryableApplicationError("urls: must list at least one URL", InvalidInputType, nil))
	}
	if err := cw.close(); err != nil {
		return fail(err)
	}
	return count, cw.chunks, nil
}

// chunkWriter writes a staged batch's chunk files, one after another.
type chunkWriter struct {
	store  blobstore.Store
	ctx    context.Context
	prefix string
	w      blobstore.Writer
	bw     *bufio.Writer
	chunks int
}

// next commits the chunk being written, if any, and starts the next.
func (c *chunkWriter) next() error {
	if err := c.close(); err != nil {
		return err
	}
	w, err := c.store.Create(c.ctx, URLsKey(c.prefix, c.chunks))
	if err != nil {
		return err
	}
	c.w, c.bw = w, bufio.NewWriterSize(w, 64<<10)
	c.chunks++
	if c.chunks%100 == 0 {
		activity.RecordHeartbeat(c.ctx, c.chunks)
	}
	return nil
}

func (c *chunkWriter) add(raw string, own *Request) {
	if own != nil {
		b, _ := json.Marshal(chunkLine{URL: raw, R: own})
		c.bw.Write(b) //nolint:errcheck // checked at Flush
	} else {
		c.bw.WriteString(raw) //nolint:errcheck
	}
	c.bw.WriteByte('\n') //nolint:errcheck
}

// close commits the chunk being written, if any.
func (c *chunkWriter) close() error {
	if c.w == nil {
		return nil
	}
	if err := flushCommit(c.bw, c.w); err != nil {
		return err
	}
	c.w = nil
	return nil
}

// stop drops the chunk being written.
func (c *chunkWriter) stop() {
	if c.w != nil {
		_ = c.w.Abort()
	}
}

// abort drops every chunk file.
func (c *chunkWriter) abort() {
	c.stop()
	_ = c.store.DeletePrefix(c.ctx, c.prefix+"/urls")
}

// urlIndex is where each staged URL is, to join earlier results to it:
// the first position of each URL's hash, and the others of a repeated
// one. A nil index notes nothing.
type urlIndex struct {
	first   map[uint64]int32
	repeats map[uint64][]int32
}

func (x *urlIndex) add(u string, pos int) {
	if x == nil {
		return
	}
	h := urlHash(u)
	if _, ok := x.first[h]; ok {
		x.repeats[h] = append(x.repeats[h], int32(pos))
	} else {
		x.first[h] = int32(pos)
	}
}

// positions are those of u, and perhaps of other URLs of the same hash.
func (x *urlIndex) positions(u string) []int32 {
	h := urlHash(u)
	i, ok := x.first[h]
	if !ok {
		return nil
	}
	return append([]int32{i}, x.repeats[h]...)
}

func urlHash(u string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(u))
	return h.Sum64()
}

func flushCommit(bw *bufio.Writer, w blobstore.Writer) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit()
}

// urlSource iterates the request's URLs, each with its own request (nil
// for a plain URL); where names a position for errors.
func (f *Fetcher) urlSource(ctx context.Context, req StageRequest) (next func() (string, *Request, int, bool, error), where func(int) string, closeSrc func(), err error) {
	if req.URLsFile == "" {
		i := 0
		return func() (string, *Request, int, bool, error) {
				if i >= len(req.URLs) {
					return "", nil, 0, false, nil
				}
				i++
				var own *Request
				if i-1 < len(req.Requests) {
					own = req.Requests[i-1]
				}
				return req.URLs[i-1], own, i - 1, true, nil
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
	sc.Buffer(make([]byte, 64<<10), MaxEntryLine)
	line := 0
	return func() (string, *Request, int, bool, error) {
			for sc.Scan() {
				line++
				s := strings.TrimSpace(sc.Text())
				if strings.HasPrefix(s, "{") {
					u, own, err := ParseEntryLine(s)
					if err != nil {
						return "", nil, line, false, temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls_file line %d: %v", line, err), InvalidInputType, nil)
					}
					return u, own, line, true, nil
				}
				if i := strings.Index(s, "#"); i == 0 || (i > 0 && (s[i-1] == ' ' || s[i-1] == '\t')) {
					s = strings.TrimSpace(s[:i])
				}
				if s != "" {
					return s, nil, line, true, nil
				}
			}
			if err := sc.Err(); err != nil {
				return "", nil, line, false, temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls_file line %d: %v", line+1, err), InvalidInputType, nil)
			}
			return "", nil, 0, false, nil
		}, func(pos int) string { return fmt.Sprintf("urls_file line %d", pos) },
		func() { r.Close() }, nil
}
