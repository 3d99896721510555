package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/tracing"
)

// FetchURLRequest asks for one attempt at one URL of a small batch. Its
// retries are Temporal's: the workflow gives the activity the URL's policy
// as its retry policy, and each activity attempt is one HTTP attempt.
type FetchURLRequest struct {
	Prefix string  `json:"prefix"`
	Task   URLTask `json:"task"`
	Policy Policy  `json:"policy"`
	// PriorAttempts are the URL's attempts in earlier activities, whose
	// attempts all went to workers that were lost: the URL's attempts are
	// these and this activity's.
	PriorAttempts int `json:"prior_attempts,omitempty"`
	// Since is when the URL's first activity was scheduled, for a later
	// one: the URL's url_timeout and elapsed time run from there.
	Since time.Time `json:"since,omitzero"`
	// Resume is what the last attempt of the earlier activity kept of the
	// body (from its checkpoint), for a later one.
	Resume Resume `json:"resume,omitzero"`
	// Keep: the batch keeps bodies (a 304 must find the earlier one kept).
	Keep bool `json:"keep,omitempty"`
	// Request is how the batch asks for its URLs (nil: a bare GET).
	Request *Request `json:"request,omitempty"`
}

// URLCheckpoint is FetchURL's heartbeat. Temporal hands the last one to the
// next attempt, which resumes a cut-off body from it; its summary reads in
// the Web UI's pending activity.
type URLCheckpoint struct {
	Summary string `json:"summary"`
	// Attempt is the URL's attempt under way (or the one that failed),
	// counting earlier activities' attempts.
	Attempt int    `json:"attempt"`
	Resume  Resume `json:"resume,omitempty"`
	// Status and Error are the last failed attempt's, while the URL waits
	// to retry.
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Application error types of a URL attempt that did not get a body. The
// details of each hold the URL's word (a Fetched), as it would be final.
const (
	// HTTPErrorType is an HTTP error status: retried for 408, 429 and
	// 5xx, final for the other 4xx.
	HTTPErrorType = "HTTPError"
	// TimeoutType is an attempt past attempt_timeout, or a URL past
	// url_timeout (final).
	TimeoutType = "Timeout"
	// FetchErrorType is anything else: a connection reset (retried), a
	// refused address, a bad URL or a body over the cap (final).
	FetchErrorType = "FetchError"
)

// Whether a failure is retried is decided per failure (a 404 is final, a
// 503 is not) and carried by the error's non-retryable flag, so that the
// same type (HTTPError) can be either.

// FetchURL makes one attempt at a URL. A body comes back as a one-item
// FetchChunkResult, for the hash step. A failure is an ApplicationError
// whose message names the failure (the HTTP status, the timeout) and whose
// details hold the URL's word; it is retryable when another attempt may
// follow (with the server's Retry-After as the next retry's delay), and
// final otherwise. The attempt number is Temporal's.
func (f *Fetcher) FetchURL(ctx context.Context, req FetchURLRequest) (*FetchChunkResult, error) {
	info := activity.GetInfo(ctx)
	ctx = withRunCheck(ctx)
	// When the worker starts stopping, the attempt stops at once and says
	// so (keeping what it has of the body), while the worker can still
	// send its answer: the SDK cancels a stopping worker's activities only
	// after its stop timeout, when their answers may no longer go out.
	ctx, stopAttempt := context.WithCancelCause(ctx)
	defer stopAttempt(nil)
	go func() {
		select {
		case <-activity.GetWorkerStopChannel(ctx):
			stopAttempt(worker.ErrWorkerShutdown)
		case <-ctx.Done():
		}
	}()
	p, t := req.Policy, req.Task
	t.R = MergeRequests(req.Request, t.R)
	attempt := req.PriorAttempts + int(info.Attempt)
	st := &urlState{attempts: attempt}
	st.resume = req.Resume
	var cp URLCheckpoint
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &cp) == nil {
		st.resume = cp.Resume
	}
	// The URL's clock runs from its first schedule, across attempts.
	first := info.ScheduledTime
	if !req.Since.IsZero() && req.Since.Before(first) {
		first = req.Since
	}
	out := Fetched{Index: t.Index, URL: t.URL, Attempts: attempt, Prev: t.Prev}
	elapsed := func() int64 { return time.Since(first).Milliseconds() }

	if !t.R.Retriable() {
		p.MaxAttempts = 1
		if attempt > 1 {
			out.Outcome, out.Error, out.ElapsedMS = OutcomeError, unsafeCutOff(t.R), elapsed()
			observer(f.Observer).URLDone(out.Outcome)
			return nil, temporal.NewApplicationErrorWithOptions(out.Error, FetchErrorType, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{out}})
		}
	}
	summary := fmt.Sprintf("attempt %d/%d: %s %s", attempt, max(p.MaxAttempts, 1), t.R.Verb(), Redact(t.URL))
	details := func() any {
		c := st.checkpoint()
		return URLCheckpoint{Summary: summary, Attempt: attempt, Resume: c.Resume}
	}
	stop := heartbeat(ctx, f.heartbeatEvery(), details)
	defer stop()
	// The server hands the next attempt the last checkpoint it recorded:
	// once this attempt has copied (and released) the earlier attempt's
	// part, it says so at once. Its first heartbeat goes out unthrottled.
	st.resumed = func() { activity.RecordHeartbeat(context.WithoutCancel(ctx), details()) }

	urlCtx := ctx
	if p.URLTimeout > 0 {
		var cancel context.CancelFunc
		urlCtx, cancel = context.WithDeadline(ctx, first.Add(p.URLTimeout))
		defer cancel()
	}
	keep := false
	defer func() {
		// A kept part of a body is for the next attempt only.
		if kept := st.get(); !keep && out.Blob == "" && kept.Blob != "" {
			if r, ok := f.Store.(blobstore.Resumer); ok {
				_ = r.Discard(context.WithoutCancel(ctx), kept.Blob)
			}
		}
	}()

	if refused, err := f.robotsRefusal(urlCtx, t.URL, t.R, p); err != nil {
		out.ElapsedMS = elapsed()
		return nil, f.urlEnded(ctx, f.ended(ctx, out, nil), st.checkpoint().Resume)
	} else if refused != nil {
		return nil, refusedURL(f, finish(out, refused), attempt-1, elapsed())
	}
	// Waiting for one of the worker's fetch slots (taken by other
	// batches' chunks) counts against the URL's budget, not the attempt's,
	// as in a chunk; the activity's start-to-close leaves room for it.
	cond := f.condition(ctx, t.Prev, req.Keep)
	var status int
	var body stored
	var fail *failure
	var timedOut bool
	var roomWaited time.Duration
	var urlDeadline time.Time
	if p.URLTimeout > 0 {
		urlDeadline = first.Add(p.URLTimeout)
	}
	gate := f.urlHostGate(req, urlDeadline)
	for {
		out.ElapsedMS = elapsed()
		hostDone, final, err := f.hostTurn(urlCtx, gate, out)
		if final != nil {
			return nil, final
		}
		if err != nil {
			out.ElapsedMS = elapsed() // the wait for its host counts
			return nil, f.urlEnded(ctx, f.ended(ctx, out, nil), st.checkpoint().Resume)
		}
		release, err := f.acquire(urlCtx)
		if err != nil {
			hostDone()
			out.ElapsedMS = elapsed()
			return nil, f.urlEnded(ctx, f.ended(ctx, out, nil), st.checkpoint().Resume)
		}
		attemptCtx, attemptTimedOut, attemptDone := attemptContext(tracing.WithAttempt(urlCtx, t.Index, attempt), p.AttemptTimeout)
		status, body, fail = f.fetchOnce(attemptCtx, t.URL, WorkPrefix(req.Prefix, t.Index), t.Index, st, cond, t.R)
		timedOut = attemptTimedOut()
		attemptDone()
		release()
		gate.paused(fail, p.Backoff(attempt))
		hostDone()
		if fail == nil || !fail.noSpace || ctx.Err() != nil || urlCtx.Err() != nil {
			break
		}
		if !t.R.Retriable() {
			fail = unsafeNoSpace(t.R, fail)
			break
		}
		// A full blob disk is not the URL's fault: the same attempt goes
		// on once there is room.
		if final := f.awaitRoom(urlCtx, fail, &roomWaited); final != nil {
			fail = final
			break
		}
	}
	out.Status = status
	out.ElapsedMS = elapsed()
	if fail == nil {
		out.Blob, out.Off, out.Size, out.CRC32C, out.Meta = body.key, body.off, body.size, &body.crc, body.meta
		if body.notModified {
			// No body: the hash step carries the earlier one's word.
			out.NotModified, out.Off, out.CRC32C = true, nil, nil
		}
		if body.noBody {
			out.NoBody, out.Off, out.CRC32C = true, nil, nil
		}
		observer(f.Observer).Fetched(out.Size, time.Since(first))
		return &FetchChunkResult{Items: []Fetched{out}, Store: f.StoreID, Backlog: f.backlog(), Worker: f.worker()}, nil
	}
	if ctx.Err() != nil || urlCtx.Err() != nil {
		keep = ctx.Err() != nil && !dropKept(ctx)
		return nil, f.urlEnded(ctx, f.ended(ctx, out, fail), st.checkpoint().Resume)
	}
	// The retry is another activity attempt: only the URL's own budget
	// bounds it, not this attempt's deadline.
	var deadline time.Time
	if p.URLTimeout > 0 {
		deadline = first.Add(p.URLTimeout)
	}
	last, retry, delay := next(fail, timedOut, attempt, p, deadline)
	word := finish(out, last)
	if !retry {
		observer(f.Observer).Fetched(0, time.Since(first))
		observer(f.Observer).URLDone(word.Outcome)
		return nil, temporal.NewApplicationErrorWithOptions(word.Error, urlErrorType(word.Outcome), temporal.ApplicationErrorOptions{
			NonRetryable: true, Details: []any{word},
		})
	}
	keep = true
	stop() // the last word of this attempt is the one below
	c := st.checkpoint()
	// Recorded before the error goes back: the SDK sends it with the
	// failure, so the Web UI shows it while the URL waits, and a cancel
	// during the wait still knows the URL's attempts.
	activity.RecordHeartbeat(ctx, URLCheckpoint{
		Summary: fmt.Sprintf("attempt %d/%d failed: %s; %s %s", attempt, max(p.MaxAttempts, 1), word.Error, t.R.Verb(), Redact(t.URL)),
		Attempt: attempt, Resume: c.Resume, Status: word.Status, Error: word.Error,
	})
	opts := temporal.ApplicationErrorOptions{Details: []any{word}}
	if last.delay > 0 {
		opts.NextRetryDelay = delay // the server's Retry-After
	}
	return nil, temporal.NewApplicationErrorWithOptions(word.Error, urlErrorType(word.Outcome), opts)
}

// urlEnded is the error of an attempt stopped by its context: canceled (the
// URL's word in the details), the server no longer owning the attempt (or
// out of reach), or the URL's url_timeout (final).
func (f *Fetcher) urlEnded(ctx context.Context, word Fetched, kept Resume) error {
	switch {
	case ctx.Err() != nil && cancelRequested(ctx):
		return temporal.NewCanceledError(FetchChunkResult{Items: []Fetched{word}, Store: f.StoreID})
	case ctx.Err() != nil && handsOn(ctx):
		// The worker is stopping (or the attempt's own deadline passed):
		// another attempt follows, from the kept part of the body, which
		// the error carries for it.
		return temporal.NewApplicationErrorWithOptions("worker stopped mid-fetch", WorkerStoppingType, temporal.ApplicationErrorOptions{
			Details: []any{URLCheckpoint{Attempt: word.Attempts, Resume: kept}},
		})
	case ctx.Err() != nil:
		// A zombie (another attempt owns the URL), or a heartbeat that
		// could not reach the server: the next attempt resumes from the
		// last checkpoint the server recorded, and the kept part is there.
		return ctx.Err()
	default:
		observer(f.Observer).Fetched(0, time.Duration(word.ElapsedMS)*time.Millisecond)
		observer(f.Observer).URLDone(word.Outcome)
		return temporal.NewApplicationErrorWithOptions(word.Error, TimeoutType, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{word}})
	}
}

func urlErrorType(outcome string) string {
	switch outcome {
	case OutcomeHTTPError:
		return HTTPErrorType
	case OutcomeTimeout:
		return TimeoutType
	default:
		return FetchErrorType
	}
}
