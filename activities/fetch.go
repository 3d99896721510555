// Package activities holds batchfetch's Temporal activities: Fetcher (the
// I/O step, on the fetch task queue) and Hasher (the CPU step, on the CPU
// task queue). Both stream bodies through a blobstore.Store, so a body
// never travels through workflow history.
//
// Register them once per worker, built around shared dependencies:
//
//	f := &activities.Fetcher{Client: activities.NewHTTPClient(activities.ClientConfig{}), Store: store}
//	w.RegisterActivity(f)
package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
)

// Error types carried by the ApplicationErrors the activities return. The
// workflow maps them to outcomes.
const (
	ErrHTTPStatus       = "HTTPStatus"       // non-2xx; FailureDetails.Status holds it
	ErrNetwork          = "Network"          // connect, reset, TLS: retryable
	ErrTruncated        = "TruncatedBody"    // fewer bytes than Content-Length: retryable
	ErrBodyTooLarge     = "BodyTooLarge"     // over the size cap: final
	ErrTooManyRedirects = "TooManyRedirects" // redirect loop or chain over the limit: final
	ErrBadRequest       = "BadRequest"       // the URL cannot be requested at all: final
	ErrBlob             = "Blob"             // blob store failure: retryable
)

// DefaultMaxBodyBytes caps one body unless Fetcher.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 1 << 30

// DefaultHeartbeatEvery is how often a running activity heartbeats.
const DefaultHeartbeatEvery = time.Second

// FetchRequest asks for one URL to be stored under Blob.
type FetchRequest struct {
	URL  string `json:"url"`
	Blob string `json:"blob"`
}

// FetchResult describes a stored body.
type FetchResult struct {
	Blob    string `json:"blob"`
	Status  int    `json:"status"`
	Size    int64  `json:"size"`
	Attempt int32  `json:"attempt"`
}

// FailureDetails rides on every error a batchfetch activity returns, so the
// workflow can report the status and the attempt that failed last.
type FailureDetails struct {
	Status  int   `json:"status,omitempty"`
	Attempt int32 `json:"attempt"`
}

// Progress is an activity's heartbeat detail: a timed-out attempt reports
// through it how far it got.
type Progress struct {
	Attempt int32 `json:"attempt"`
	Bytes   int64 `json:"bytes"`
}

// Fetcher is the fetch activity. One Fetcher (and one http.Client) serves
// every fetch a worker runs.
type Fetcher struct {
	Client *http.Client
	Store  blobstore.Store
	// MaxBodyBytes caps a body; a longer one fails with BodyTooLarge.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// HeartbeatEvery defaults to DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Fetch GETs one URL and streams its body into the blob store. A non-2xx
// status, a network error or a short body is an error whose type tells the
// workflow (and Temporal's retry policy) what happened.
func (f *Fetcher) Fetch(ctx context.Context, req FetchRequest) (*FetchResult, error) {
	info := activity.GetInfo(ctx)
	attempt := info.Attempt
	fail := func(typ string, status int, retryable bool, delay time.Duration, format string, args ...any) error {
		return temporal.NewApplicationErrorWithOptions(fmt.Sprintf(format, args...), typ, temporal.ApplicationErrorOptions{
			NonRetryable:   !retryable,
			NextRetryDelay: delay,
			Details:        []any{FailureDetails{Status: status, Attempt: attempt}},
		})
	}

	var read atomic.Int64
	stop := heartbeat(ctx, f.heartbeatEvery(), func() Progress { return Progress{Attempt: attempt, Bytes: read.Load()} })
	defer stop()

	httpReq, err := http.NewRequestWithContext(ctx, http.MethodGet, req.URL, nil)
	if err != nil {
		return nil, fail(ErrBadRequest, 0, false, 0, "building request: %v", err)
	}
	resp, err := f.Client.Do(httpReq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errTooManyRedirects) {
			return nil, fail(ErrTooManyRedirects, 0, false, 0, "%v", err)
		}
		return nil, fail(ErrNetwork, 0, true, 0, "%v", err)
	}
	defer resp.Body.Close()

	switch ClassifyStatus(resp.StatusCode) {
	case StatusRetryable:
		drain(resp.Body)
		delay := RetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, fail(ErrHTTPStatus, resp.StatusCode, true, delay, "HTTP %s", resp.Status)
	case StatusPermanent:
		drain(resp.Body)
		return nil, fail(ErrHTTPStatus, resp.StatusCode, false, 0, "HTTP %s", resp.Status)
	}

	limit := f.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if resp.ContentLength > limit {
		return nil, fail(ErrBodyTooLarge, resp.StatusCode, false, 0, "body of %d bytes is over the %d-byte cap", resp.ContentLength, limit)
	}

	w, err := f.Store.Create(ctx, req.Blob)
	if err != nil {
		return nil, fail(ErrBlob, resp.StatusCode, true, 0, "%v", err)
	}
	defer w.Abort() //nolint:errcheck // no-op after Commit

	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			total := read.Add(int64(n))
			if total > limit {
				return nil, fail(ErrBodyTooLarge, resp.StatusCode, false, 0, "body is over the %d-byte cap", limit)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return nil, fail(ErrBlob, resp.StatusCode, true, 0, "writing body: %v", err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				return nil, fail(ErrTruncated, resp.StatusCode, true, 0, "body truncated after %d of %d bytes", read.Load(), resp.ContentLength)
			}
			return nil, fail(ErrNetwork, resp.StatusCode, true, 0, "reading body after %d bytes: %v", read.Load(), rerr)
		}
	}
	if err := w.Commit(); err != nil {
		return nil, fail(ErrBlob, resp.StatusCode, true, 0, "%v", err)
	}
	activity.GetLogger(ctx).Debug("fetched", "url", Redact(req.URL), "status", resp.StatusCode, "bytes", read.Load(), "attempt", attempt)
	return &FetchResult{Blob: req.Blob, Status: resp.StatusCode, Size: read.Load(), Attempt: attempt}, nil
}

// RemoveBlobs deletes every blob under prefix: a batch's blobs when it ends.
func (f *Fetcher) RemoveBlobs(ctx context.Context, prefix string) error {
	if err := f.Store.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("removing blobs under %s: %w", prefix, err)
	}
	return nil
}

func (f *Fetcher) heartbeatEvery() time.Duration {
	if f.HeartbeatEvery > 0 {
		return f.HeartbeatEvery
	}
	return DefaultHeartbeatEvery
}

// drain reads a little of an error body so the connection can be reused.
func drain(body io.Reader) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
}

// heartbeat records progress every interval until stop is called. A
// heartbeat is how a cancel request reaches a running activity (its ctx is
// cancelled), so this also runs while waiting for response headers.
func heartbeat(ctx context.Context, every time.Duration, progress func() Progress) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, progress())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
