package activities

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/activity"

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
	// noBody: the request was a HEAD.
	noBody bool
}

// attempt is one attempt's hold on a URL's body: the blob it writes (key)
// and, where the store can keep a part of a body for the next attempt,
// its pausable writer (pw).
type attempt struct {
	ctx       context.Context
	url, key  string
	st        *urlState
	resumer   blobstore.Resumer
	canResume bool
	pw        blobstore.PausableWriter
	length    int64 // the whole body's, as far as the server said
}

// setPW makes pw the attempt's writer, which its checkpoints go by.
func (a *attempt) setPW(pw blobstore.PausableWriter) {
	a.pw = pw
	a.st.hold(pw)
}

// discard drops what this attempt holds.
func (a *attempt) discard() {
	if a.pw != nil {
		_ = a.pw.Abort()
		a.setPW(nil)
	}
	a.st.set(Resume{})
}

// pause keeps what this attempt holds for the next one, unless the batch
// has no use for it (dropKept).
func (a *attempt) pause() {
	if a.pw == nil {
		return
	}
	if dropKept(a.ctx) || a.pw.Pause() != nil {
		a.discard()
	}
}

// fetchOnce makes one attempt: ask for url (GET, or as r says) and stream the body into a blob of
// this attempt's own. When an earlier attempt kept part of the body and the
// server identified it, it copies that part into the new blob (checking it
// against its CRC) and asks the server for the rest only.
//
// With cond, an attempt that starts from byte zero asks for the body only
// if it changed (askIfChanged): a 304 is no body.
func (f *Fetcher) fetchOnce(ctx context.Context, url, work string, index int, st *urlState, cond *Prev, r *Request) (status int, out stored, fail *failure) {
	if ctx.Err() != nil {
		// Stopped (canceled, or no longer this attempt's to make): no
		// blob is made, and no kept part moved, after that.
		return 0, stored{}, &failure{outcome: OutcomeError, retryable: true, msg: ctx.Err().Error()}
	}
	req, secrets, fail := f.newRequest(ctx, url, r)
	if fail != nil {
		return 0, stored{}, fail
	}
	defer func() {
		// What the server or the client said may echo a secret.
		if fail != nil && len(secrets) > 0 {
			fail.msg = scrub(fail.msg, secrets)
		}
	}()
	a := &attempt{ctx: ctx, url: url, key: attemptKey(work, index), st: st}
	a.resumer, a.canResume = f.Store.(blobstore.Resumer)
	var prev Resume
	conditional := false
	if r.plain() {
		prev = a.resume(req)
		// A body asked for from byte zero may not be needed at all.
		conditional = a.pw == nil && askIfChanged(req, cond)
	} else {
		// Only a GET is resumed with a range, or asked only if changed.
		a.canResume = false
		a.st.set(Resume{})
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		a.pause()
		var blocked *BlockedError
		if errors.Is(err, errTooManyRedirects) || errors.As(err, &blocked) {
			return 0, stored{}, &failure{outcome: OutcomeError, msg: unwrapURL(err)}
		}
		return 0, stored{}, &failure{outcome: OutcomeError, retryable: true, msg: unwrapURL(err)}
	}
	defer resp.Body.Close()
	dropEchoes(resp.Header, secrets)

	if a.pw != nil && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// The server cannot serve the rest (the kept part may be the
		// whole body, its stream having failed after the last byte):
		// start over from byte zero.
		drain(resp.Body)
		resp.Body.Close()
		a.discard()
		return f.fetchOnce(ctx, url, work, index, st, cond, r)
	}
	if resp.StatusCode == http.StatusNotModified {
		out, fail, whole := a.notModified(resp, conditional, cond)
		if whole {
			return f.fetchOnce(ctx, url, work, index, st, nil, r)
		}
		return resp.StatusCode, out, fail
	}
	switch ClassifyStatus(resp.StatusCode) {
	case StatusRetryable:
		a.pause()
		drain(resp.Body)
		return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, retryable: true,
			delay: RetryAfter(resp.Header.Get("Retry-After"), time.Now()), msg: "HTTP " + statusText(resp)}
	case StatusPermanent:
		a.discard()
		drain(resp.Body)
		return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, msg: "HTTP " + statusText(resp)}
	}
	if r.method() == http.MethodHead {
		drain(resp.Body)
		return resp.StatusCode, stored{noBody: true, meta: metaOf(resp.Header)}, nil
	}
	status, cur, restart := a.continuation(resp, prev)
	if restart {
		return f.fetchOnce(ctx, url, work, index, st, cond, r)
	}
	if status == http.StatusPartialContent {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "unexpected partial content " + resp.Header.Get("Content-Range")}
	}
	return f.receive(a, resp, status, cur)
}

// resume copies the part of the body an earlier attempt kept into this
// attempt's blob, checking it against its CRC, and asks for the rest
// (Range, If-Range), when the store and the server can resume it. It
// returns what is resumed (this attempt holds it in a.pw); a part that
// cannot be copied, or does not match, is dropped.
func (a *attempt) resume(req *http.Request) Resume {
	prev := a.st.get()
	if !a.canResume || !prev.resumable() {
		return prev
	}
	crc := crc32.New(castagnoli)
	pw, err := a.resumer.ResumeFrom(a.ctx, a.key, prev.Blob, prev.Bytes, crc)
	switch {
	case err != nil:
		activity.GetLogger(a.ctx).Info("cannot resume download, starting over", "url", Redact(a.url), "error", err)
		a.st.set(Resume{})
	case crc.Sum32() != prev.CRC32C:
		activity.GetLogger(a.ctx).Warn("kept part of the body does not match its checksum, starting over", "url", Redact(a.url), "bytes", prev.Bytes)
		_ = pw.Abort()
		a.st.set(Resume{})
	default:
		a.setPW(pw)
		prev.Blob = a.key // a checkpoint now points at this attempt's copy
		a.st.set(prev)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", prev.Bytes))
		req.Header.Set("If-Range", prev.validator())
		if a.st.resumed != nil {
			a.st.resumed()
		}
	}
	return prev
}

// notModified is the word of a 304: the earlier body stands, if the
// request was conditional and the 304 names the body asked about. whole:
// it names another ETag, and is not to be trusted: ask for the body
// itself.
func (a *attempt) notModified(resp *http.Response, conditional bool, cond *Prev) (out stored, fail *failure, whole bool) {
	drain(resp.Body)
	a.discard()
	if !conditional {
		return stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, msg: "HTTP " + statusText(resp) + " to a request that was not conditional"}, false
	}
	if et := resp.Header.Get("ETag"); et != "" && cond.ETag != "" && !weakMatch(et, cond.ETag) {
		activity.GetLogger(a.ctx).Warn("a 304 names another ETag than the one sent, fetching the body", "url", Redact(a.url), "sent", cond.ETag, "got", et)
		return stored{}, nil, true
	}
	return stored{notModified: true, meta: metaOf(resp.Header)}, nil, false
}

// continuation reads a 2xx answer: the whole body, or, after a kept part
// (a.pw), the rest of the same body (then its status is 200 and cur the
// kept part's, to be continued). An answer that is not exactly the rest
// of the same body (it changed, the server ignored the range) drops the
// kept part: a 200 is then taken whole, and a 206 asked again from byte
// zero (restart).
func (a *attempt) continuation(resp *http.Response, prev Resume) (status int, cur Resume, restart bool) {
	status = resp.StatusCode
	cur = identify(resp)
	cur.Blob = a.key
	if a.pw == nil {
		return status, cur, false
	}
	if total, ok := continues(resp, prev); status == http.StatusPartialContent && ok {
		cur = prev // the rest of the same body, after the copied part
		cur.Total = total
		activity.GetLogger(a.ctx).Info("resuming download", "url", Redact(a.url), "offset", prev.Bytes)
		return http.StatusOK, cur, false
	}
	a.discard()
	if status == http.StatusPartialContent {
		drain(resp.Body)
		resp.Body.Close()
		activity.GetLogger(a.ctx).Info("the rest of the body does not match the kept part, starting over", "url", Redact(a.url), "content_range", resp.Header.Get("Content-Range"))
		return status, cur, true
	}
	return status, cur, false
}

// fetchURL fetches one URL with the batch's per-URL policy: attempts with
// their own timeout, exponential backoff (or the server's Retry-After)
// between them, all within the URL's budget. prior counts attempts made
// before a restart. It returns a final word on the URL; ctx being canceled
// ends it as canceled.

// statusText is resp's status line as an error says it: its reason phrase
// may hold any byte but a line end, and a hostile server's escape
// sequences would act on the terminal that shows the error (or clear it,
// or move its cursor). What is not printed is written as Go escapes it.
func statusText(resp *http.Response) string {
	var b strings.Builder
	for s := resp.Status; len(s) > 0; {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, "\\x%02x", s[0])
		case r == ' ' || strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	return b.String()
}
