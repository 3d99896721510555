package activities

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/blobstore"
)

type stored struct {
	key  string
	off  *int64 // in a pack, from here
	size int64
	crc  uint32
	meta Meta
	// notModified: the server answered 304 to the conditional request;
	// there is no body.
	notModified bool
}

// Meta is what a response said about its body: kept in the URL's result.
type Meta struct {
	ContentType  string `json:"ct,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lm,omitempty"`
}

// weakMatch compares two ETags as If-None-Match does: W/ prefixes aside.
func weakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// metaOf reads a response's Meta. A value that is longer than any real
// content type, ETag or date, or holds bytes other than printable ASCII
// (or the <, > and & that JSON escapes six-fold), is left out: a result's
// size stays bounded (see workflows.inlineFits).
func metaOf(h http.Header) Meta {
	get := func(k string, max int) string {
		v := h.Get(k)
		if len(v) > max {
			return ""
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c > 0x7e || c == '<' || c == '>' || c == '&' {
				return ""
			}
		}
		return v
	}
	return Meta{ContentType: get("Content-Type", 128), ETag: get("ETag", 128), LastModified: get("Last-Modified", 64)}
}

// dropKept tells whether a part-read body is of no use to a later attempt:
// the batch was canceled, or the server gave up on this attempt (a later
// one resumes from the checkpoint, or starts over if this part is gone).
// A body cut off by the attempt's own timeout, or by its worker shutting
// down (the chunk resumes on another worker), is kept.
func dropKept(ctx context.Context) bool {
	if ctx.Err() == nil || workerStopping(ctx) {
		return false
	}
	cause := context.Cause(ctx)
	return !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, errAttemptTimeout) && !errors.Is(cause, worker.ErrWorkerShutdown)
}

// workerStopping tells whether this activity's worker is shutting down (its
// running activities are then canceled, not always with ErrWorkerShutdown as
// the cause).
func workerStopping(ctx context.Context) bool {
	if !activity.IsActivity(ctx) {
		return false
	}
	select {
	case <-activity.GetWorkerStopChannel(ctx):
		return true
	default:
		return false
	}
}

// errAttemptTimeout is the cause of an attempt cut off by attempt_timeout.
var errAttemptTimeout = errors.New("attempt timed out (attempt_timeout)")

// attemptContext bounds one attempt by d, counted from when the request
// goes on the wire: a dial starts, or a pooled connection is handed over.
// Waiting for a connection (the per-host cap, --max-conns-per-host) is not
// the attempt's time: it counts against the URL's url_timeout. timedOut
// tells whether d ran out.
func attemptContext(parent context.Context, d time.Duration) (ctx context.Context, timedOut func() bool, done func()) {
	ctx, cancel := context.WithCancelCause(parent)
	var mu sync.Mutex
	var timer *time.Timer
	stopped := false
	start := func() {
		mu.Lock()
		defer mu.Unlock()
		if timer == nil && !stopped {
			timer = time.AfterFunc(d, func() { cancel(errAttemptTimeout) })
		}
	}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart:     func(httptrace.DNSStartInfo) { start() },
		ConnectStart: func(string, string) { start() },
		GotConn:      func(httptrace.GotConnInfo) { start() },
	})
	timedOut = func() bool { return errors.Is(context.Cause(ctx), errAttemptTimeout) }
	done = func() {
		mu.Lock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel(nil)
	}
	ctx = context.WithValue(ctx, attemptCtxKey{}, ctx)
	return ctx, timedOut, done
}

type attemptCtxKey struct{}

// boundToAttempt ends a dial with the attempt that started it: net/http
// detaches dials from the request's cancellation, so an orphaned dial
// would hold a per-host slot for DialTimeout per address.
func boundToAttempt(ctx context.Context) (context.Context, context.CancelFunc) {
	a, ok := ctx.Value(attemptCtxKey{}).(context.Context)
	if !ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(a, func() { cancel(context.Cause(a)) })
	return ctx, func() { stop(); cancel(nil) }
}

// cancelRequested tells whether the workflow asked for the activity to be
// canceled, as opposed to the server no longer knowing this attempt (it
// timed out while the worker was frozen or cut off: a zombie).
func cancelRequested(ctx context.Context) bool {
	var c *temporal.CanceledError
	return ctx.Err() != nil && errors.As(context.Cause(ctx), &c)
}

// fetchOnce makes one attempt: GET url and stream the body into a blob of
// this attempt's own. When an earlier attempt kept part of the body and the
// server identified it, it copies that part into the new blob (checking it
// against its CRC) and asks the server for the rest only.
//
// With cond, an attempt that starts from byte zero asks for the body only
// if it changed (If-None-Match, If-Modified-Since): a 304 is no body.
func (f *Fetcher) fetchOnce(ctx context.Context, url, prefix string, index int, st *urlState, cond *Prev) (int, stored, *failure) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, stored{}, &failure{outcome: OutcomeError, msg: "building request: " + err.Error()}
	}
	key := attemptKey(prefix, index)
	prev := st.get()
	resumer, canResume := f.Store.(blobstore.Resumer)
	var pw blobstore.PausableWriter
	if canResume && prev.resumable() {
		crc := crc32.New(castagnoli)
		pw, err = resumer.ResumeFrom(ctx, key, prev.Blob, prev.Bytes, crc)
		switch {
		case err != nil:
			activity.GetLogger(ctx).Info("cannot resume download, starting over", "url", Redact(url), "error", err)
			pw = nil
			st.set(Resume{})
		case crc.Sum32() != prev.CRC32C:
			activity.GetLogger(ctx).Warn("kept part of the body does not match its checksum, starting over", "url", Redact(url), "bytes", prev.Bytes)
			_ = pw.Abort()
			pw = nil
			st.set(Resume{})
		default:
			prev.Blob = key // a checkpoint now points at this attempt's copy
			st.set(prev)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", prev.Bytes))
			req.Header.Set("If-Range", prev.validator())
		}
	}
	// A body asked for from byte zero may not be needed at all.
	// Only an earlier body whose hash is known can stand for this one; an
	// ETag, when known, is the one validator sent (a server that honours
	// only dates would otherwise say 304 for a body that changed under
	// the same date).
	conditional := false
	if pw == nil && cond != nil && cond.SHA256 != "" && (cond.ETag != "" || cond.LastModified != "") {
		conditional = true
		if cond.ETag != "" {
			req.Header.Set("If-None-Match", cond.ETag)
		} else {
			req.Header.Set("If-Modified-Since", cond.LastModified)
		}
	}
	// discard drops what this attempt holds; pause keeps it for the next.
	discard := func() {
		if pw != nil {
			_ = pw.Abort()
			pw = nil
		}
		st.set(Resume{})
	}
	pause := func() {
		if pw == nil {
			return
		}
		if dropKept(ctx) || pw.Pause() != nil {
			discard()
		}
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		pause()
		var blocked *BlockedError
		if errors.Is(err, errTooManyRedirects) || errors.As(err, &blocked) {
			return 0, stored{}, &failure{outcome: OutcomeError, msg: unwrapURL(err)}
		}
		return 0, stored{}, &failure{outcome: OutcomeError, retryable: true, msg: unwrapURL(err)}
	}
	defer resp.Body.Close()

	if pw != nil && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// The server cannot serve the rest (the kept part may be the
		// whole body, its stream having failed after the last byte):
		// start over from byte zero.
		drain(resp.Body)
		resp.Body.Close()
		discard()
		return f.fetchOnce(ctx, url, prefix, index, st, cond)
	}
	if resp.StatusCode == http.StatusNotModified {
		drain(resp.Body)
		discard()
		if !conditional {
			return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, msg: "HTTP " + resp.Status + " to a request that was not conditional"}
		}
		if et := resp.Header.Get("ETag"); et != "" && cond.ETag != "" && !weakMatch(et, cond.ETag) {
			// "Not modified", naming another body than the one asked
			// about: not to be trusted. Ask for the body itself.
			activity.GetLogger(ctx).Warn("a 304 names another ETag than the one sent, fetching the body", "url", Redact(url), "sent", cond.ETag, "got", et)
			return f.fetchOnce(ctx, url, prefix, index, st, nil)
		}
		return resp.StatusCode, stored{notModified: true, meta: metaOf(resp.Header)}, nil
	}
	switch ClassifyStatus(resp.StatusCode) {
	case StatusRetryable:
		pause()
		drain(resp.Body)
		return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, retryable: true,
			delay: RetryAfter(resp.Header.Get("Retry-After"), time.Now()), msg: "HTTP " + resp.Status}
	case StatusPermanent:
		discard()
		drain(resp.Body)
		return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, msg: "HTTP " + resp.Status}
	}
	status := resp.StatusCode
	cur := identify(resp)
	cur.Blob = key
	if pw != nil {
		total, ok := continues(resp, prev)
		if status != http.StatusPartialContent || !ok {
			// The body changed, the server ignored the range, or its
			// answer is not exactly the rest of the same body: drop the
			// kept part and take the whole body.
			discard()
			if status == http.StatusPartialContent {
				drain(resp.Body)
				resp.Body.Close()
				activity.GetLogger(ctx).Info("the rest of the body does not match the kept part, starting over", "url", Redact(url), "content_range", resp.Header.Get("Content-Range"))
				return f.fetchOnce(ctx, url, prefix, index, st, cond)
			}
		} else {
			cur = prev // the rest of the same body, after the copied part
			cur.Total = total
			status = http.StatusOK
			activity.GetLogger(ctx).Info("resuming download", "url", Redact(url), "offset", prev.Bytes)
		}
	}
	if status == http.StatusPartialContent {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "unexpected partial content " + resp.Header.Get("Content-Range")}
	}

	limit := f.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := &failure{outcome: OutcomeError, status: status, msg: fmt.Sprintf("body is over the %d-byte cap", limit)}
	if resp.ContentLength > limit-cur.Bytes {
		discard()
		return status, stored{}, tooLarge
	}
	var w blobstore.Writer
	var small *memBody // a small body, held until it goes into the chunk's pack
	pk := packOf(ctx)
	switch {
	case pw != nil:
		w = pw
	case pk != nil && resp.ContentLength <= SmallBody: // or of unknown length
		small = &memBody{}
		w = small
	case canResume:
		if pw, err = resumer.CreateResumable(ctx, key); err == nil {
			w = pw
		}
	default:
		w, err = f.Store.Create(ctx, key)
	}
	if err != nil {
		st.set(Resume{})
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: err.Error()}
	}
	if pw == nil {
		cur.Blob = "" // this store cannot keep a part for later
	}
	st.set(cur)
	committed := false
	defer func() {
		if committed {
			return
		}
		// Keep a part-read body for the next attempt when the server can
		// resume it; drop it otherwise.
		if pw != nil && st.get().resumable() {
			pause()
			return
		}
		_ = w.Abort()
		st.set(Resume{})
	}()

	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if st.get().Bytes+int64(n) > limit {
				_ = w.Abort()
				st.set(Resume{})
				committed = true // nothing to keep
				return status, stored{}, tooLarge
			}
			if small != nil && len(small.b)+n > SmallBody {
				// Larger than it looked: a blob of its own, resumable.
				spw, sw, err := f.spill(ctx, key, small.b, resumer, canResume)
				if err != nil {
					return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "storing body: " + err.Error()}
				}
				pw, w, small = spw, sw, nil
				if pw != nil {
					s := st.get()
					s.Blob = key
					st.set(s)
				}
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "storing body: " + err.Error()}
			}
			st.wrote(buf[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			read := st.get().Bytes
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				msg := fmt.Sprintf("body truncated after %d of %d bytes", read, cur.Bytes+resp.ContentLength)
				if resp.ContentLength < 0 {
					msg = fmt.Sprintf("body cut off after %d bytes (the connection closed mid-stream)", read)
				}
				return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: msg}
			}
			return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true,
				msg: fmt.Sprintf("reading body after %d bytes: %v", read, rerr)}
		}
	}
	done := st.get()
	if done.Total != 0 && done.Bytes != done.Total {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true,
			msg: fmt.Sprintf("body truncated after %d of %d bytes", done.Bytes, done.Total)}
	}
	if small != nil {
		packKey, off, err := pk.append(small.b)
		if err == nil {
			committed = true
			st.set(Resume{})
			return status, stored{key: packKey, off: &off, size: done.Bytes, crc: done.CRC32C, meta: metaOf(resp.Header)}, nil
		}
		// The pack failed (the next body starts another): this one goes
		// to a blob of its own.
		activity.GetLogger(ctx).Warn("the chunk's pack failed, storing the body on its own", "url", Redact(url), "error", err)
		if w, err = f.Store.Create(ctx, key); err != nil {
			return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "storing body: " + err.Error()}
		}
		if _, err := w.Write(small.b); err != nil {
			return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "storing body: " + err.Error()}
		}
	}
	if err := w.Commit(); err != nil {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: err.Error()}
	}
	committed = true
	st.set(Resume{})
	return status, stored{key: key, size: done.Bytes, crc: done.CRC32C, meta: metaOf(resp.Header)}, nil
}

// fetchURL fetches one URL with the batch's per-URL policy: attempts with
// their own timeout, exponential backoff (or the server's Retry-After)
// between them, all within the URL's budget. prior counts attempts made
// before a restart. It returns a final word on the URL; ctx being canceled
// ends it as canceled.
