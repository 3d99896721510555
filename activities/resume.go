package activities

import (
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// urlState is what is known of a URL being fetched: shared with the
// heartbeat, which checkpoints it.
type urlState struct {
	mu       sync.Mutex
	attempts int
	// first is when the URL's first attempt started, in this chunk
	// attempt or an earlier one: url_timeout and elapsed_ms run from it.
	first time.Time
	// retryAt is when the URL's next attempt may start (its backoff or
	// the server's Retry-After), while it waits.
	retryAt time.Time
	// last is the failure of its last attempt, while it waits.
	last string
	// resume is the body of the attempt under way, or the part of it kept
	// for the next attempt: its blob, how many bytes it holds and their
	// CRC, updated together after every write.
	resume Resume
	// resumed, when set, is called once an attempt holds its own copy of
	// the part an earlier one kept, whose blob is then released: the
	// checkpoint must name the copy at once, not at the next heartbeat.
	resumed func()
	// kept, while an attempt's writer keeps less than it was given (an
	// object store's writer holds the part it is filling), says what
	// would outlive the process now: a checkpoint names no more.
	kept func() (int64, uint32)
}

// hold records pw as the writer of the attempt under way (nil: none).
func (st *urlState) hold(pw blobstore.PausableWriter) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.kept = nil
	if k, ok := pw.(blobstore.Keeper); ok {
		st.kept = k.Kept
	}
}

func (st *urlState) set(r Resume) {
	st.mu.Lock()
	st.resume = r
	st.mu.Unlock()
}

// waiting records that the URL waits until at to retry, after failing with
// msg (zero at: it is no longer waiting).
func (st *urlState) waiting(at time.Time, msg string) {
	st.mu.Lock()
	st.retryAt, st.last = at, msg
	st.mu.Unlock()
}

func (st *urlState) lastFailure() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.last
}

func (st *urlState) get() Resume {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.resume
}

// wrote accounts for n more bytes of the body, written to the blob.
func (st *urlState) wrote(b []byte) {
	st.mu.Lock()
	st.resume.Bytes += int64(len(b))
	st.resume.CRC32C = crc32.Update(st.resume.CRC32C, castagnoli, b)
	st.mu.Unlock()
}

// checkpoint is what a retried chunk needs to resume this URL.
func (st *urlState) checkpoint() inFlight {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.resume
	if st.kept != nil && r.Blob != "" {
		if n, crc := st.kept(); n < r.Bytes {
			r.Bytes, r.CRC32C = n, crc
		}
	}
	if !r.resumable() {
		r = Resume{}
	}
	return inFlight{Attempts: st.attempts, Resume: r, First: unixMilli(st.first), RetryAt: unixMilli(st.retryAt), Last: st.last}
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromUnixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Resume is how far a URL's body got and what identified it, enough to ask
// the server for the rest (Range, validated with If-Range).
type Resume struct {
	Bytes int64 `json:"bytes,omitempty"`
	// ETag (strong only) or LastModified (only when it is a strong
	// validator: a second or more before the response's Date) identify
	// the body; RFC 9110 allows no other in If-Range.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// Total is the body's length when the server said it (0: unknown);
	// Encoding its Content-Encoding. A range of the rest must match both.
	Total    int64  `json:"total,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	// Blob is the key of the attempt that holds the first Bytes bytes
	// (paused, or still being written); CRC32C is their checksum.
	Blob   string `json:"blob,omitempty"`
	CRC32C uint32 `json:"crc32c,omitempty"`
}

func (r Resume) validator() string {
	if r.ETag != "" {
		return r.ETag
	}
	return r.LastModified
}

func (r Resume) resumable() bool {
	return r.Bytes > 0 && r.Blob != "" && r.validator() != "" && (r.Total == 0 || r.Bytes < r.Total)
}

// identify reads what identifies a response's body for a later Range
// request: a strong ETag, or else a Last-Modified that is a strong
// validator. A weak ETag rules out both (RFC 9110, 13.1.5).
func identify(resp *http.Response) Resume {
	r := Resume{Encoding: resp.Header.Get("Content-Encoding")}
	if resp.ContentLength > 0 {
		r.Total = resp.ContentLength
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		if !strings.HasPrefix(etag, "W/") {
			r.ETag = etag
		}
		return r
	}
	if lm := resp.Header.Get("Last-Modified"); strongDate(lm, resp.Header.Get("Date")) {
		r.LastModified = lm
	}
	return r
}

// continues tells whether a 206 answer to a request for the bytes after
// prev.Bytes is the rest of the same body: it starts there and runs to
// the end, of the same length, encoding and validator. It returns the
// body's total length.
func continues(resp *http.Response, prev Resume) (int64, bool) {
	var start, end, total int64
	if n, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil || n != 3 {
		return 0, false
	}
	switch {
	case start != prev.Bytes || end != total-1 || (prev.Total != 0 && total != prev.Total):
		return 0, false
	case resp.Header.Get("Content-Encoding") != prev.Encoding:
		return 0, false
	case prev.ETag != "" && resp.Header.Get("ETag") != prev.ETag:
		return 0, false // a 206 repeats the validator (RFC 9110 15.3.7)
	case prev.ETag == "" && resp.Header.Get("Last-Modified") != prev.LastModified:
		return 0, false
	}
	return total, true
}

// stored is a body an attempt committed.
