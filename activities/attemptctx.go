package activities

import (
	"context"
	"errors"
	"net/http/httptrace"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
)

// dropKept tells whether a part-read body is of no use to a later attempt:
// the batch was canceled, or the server no longer knows this attempt and
// its workflow has closed (no attempt of it will resume from the part, and
// its batch's cleanup may have run already: nothing else would remove a
// part kept after it). Any other end keeps it, as the next attempt
// resumes from the checkpoint the server recorded last, which may name
// this part: an attempt cut off by its own timeout, by its worker shutting
// down, by a heartbeat that could not reach the server (it was down or
// restarting), or by the server no longer owning it while its workflow
// runs (it timed the attempt out, and the next one may be copying this
// part already). A kept part is released by the attempt that resumes from
// it, or with its batch's blobs.
func dropKept(ctx context.Context) bool {
	if ctx.Err() == nil {
		return false
	}
	if disowned(ctx) {
		return !runOpen(ctx)
	}
	return cancelRequested(ctx) && !workerStopping(ctx)
}

// disowned tells whether the server no longer knows this attempt: its
// heartbeat was answered NotFound (the attempt timed out while its worker
// was frozen or cut off, or its workflow closed).
func disowned(ctx context.Context) bool {
	var nf *serviceerror.NotFound
	return errors.As(context.Cause(ctx), &nf)
}

// runCheckTimeout bounds the question runOpen asks the server.
const runCheckTimeout = 5 * time.Second

// runCheck is the answer of runOpen for one activity attempt, asked once
// however many of its URLs stop.
type runCheck struct {
	once sync.Once
	open bool
	ask  func(context.Context) bool
}

type runCheckKey struct{}

// withRunCheck makes the attempts under ctx share one runOpen answer.
func withRunCheck(ctx context.Context) context.Context {
	return context.WithValue(ctx, runCheckKey{}, &runCheck{ask: askRunOpen})
}

// runOpen tells whether this activity's workflow still runs, as far as
// the server says; when it cannot tell, it says yes (a part kept for
// nothing goes with its batch's blobs, one dropped for an attempt that
// resumes would be fetched again).
func runOpen(ctx context.Context) bool {
	rc, ok := ctx.Value(runCheckKey{}).(*runCheck)
	if !ok {
		return askRunOpen(ctx)
	}
	rc.once.Do(func() { rc.open = rc.ask(ctx) })
	return rc.open
}

func askRunOpen(ctx context.Context) bool {
	if !activity.IsActivity(ctx) {
		return true
	}
	c := activity.GetClient(ctx)
	if c == nil {
		return true
	}
	run := activity.GetInfo(ctx).WorkflowExecution
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runCheckTimeout)
	defer cancel()
	d, err := c.DescribeWorkflowExecution(dctx, run.ID, run.RunID)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return false // closed and gone past its retention
	case err != nil:
		return true
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// handsOn tells whether an attempt stopped by its context may say so to
// the server, with what it kept, for the next one: its worker is stopping,
// or its own deadline passed. Otherwise the server gave up on it, or could
// not be reached, and the next attempt goes by the last checkpoint.
func handsOn(ctx context.Context) bool {
	if ctx.Err() == nil || workerStopping(ctx) {
		return true
	}
	cause := context.Cause(ctx)
	return errors.Is(cause, context.DeadlineExceeded) || errors.Is(cause, errAttemptTimeout) || errors.Is(cause, worker.ErrWorkerShutdown)
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
