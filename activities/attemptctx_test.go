package activities

import (
	"context"
	"errors"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
)

// A part-read body is dropped when its batch is canceled: however else
// its attempt ends, the next one may resume from a checkpoint that names
// it (a zombie's outside an activity, where no workflow can be asked).
func TestKeptPartIsDroppedOnlyOnCancel(t *testing.T) {
	for _, c := range []struct {
		what  string
		cause error // nil: not canceled
		drop  bool
	}{
		{"running", nil, false},
		{"the batch canceled", temporal.NewCanceledError(), true},
		{"attempt_timeout", errAttemptTimeout, false},
		{"url_timeout", context.DeadlineExceeded, false},
		{"the server down: the heartbeat gave up", serviceerror.NewDeadlineExceeded("context deadline exceeded"), false},
		{"the server unavailable", serviceerror.NewUnavailable("connection refused"), false},
		{"the server timed the attempt out (a zombie)", serviceerror.NewNotFound("invalid activityID or activity already timed out"), false},
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		if c.cause != nil {
			cancel(c.cause)
		}
		// An attempt's context is a child of the activity's.
		attemptCtx, attemptDone := context.WithCancelCause(ctx)
		if got := dropKept(attemptCtx); got != c.drop {
			t.Errorf("%s: dropKept = %v, want %v", c.what, got, c.drop)
		}
		attemptDone(nil)
		cancel(nil)
	}
}

// A zombie (the server answered its heartbeat NotFound) keeps its part
// only while its workflow runs: once the workflow has closed, no attempt
// resumes from the part, and its batch's cleanup may be over.
func TestZombieKeepsItsPartOnlyWhileItsWorkflowRuns(t *testing.T) {
	for _, open := range []bool{true, false} {
		asked := 0
		rc := &runCheck{ask: func(context.Context) bool { asked++; return open }}
		ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), runCheckKey{}, rc))
		cancel(serviceerror.NewNotFound("invalid activityID or activity already timed out"))
		for i := range 3 { // several URLs of one chunk stop at once
			attemptCtx, attemptDone := context.WithCancelCause(ctx)
			if got := dropKept(attemptCtx); got != !open {
				t.Errorf("workflow running %v, URL %d: dropKept = %v, want %v", open, i, got, !open)
			}
			attemptDone(nil)
		}
		if asked != 1 {
			t.Errorf("workflow running %v: the server was asked %d times, want once per activity attempt", open, asked)
		}
		// Canceled by the batch, or cut off from the server: no question.
		for _, cause := range []error{temporal.NewCanceledError(), serviceerror.NewUnavailable("connection refused")} {
			rc := &runCheck{ask: func(context.Context) bool { t.Errorf("asked the server after %v", cause); return true }}
			ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), runCheckKey{}, rc))
			cancel(cause)
			dropKept(ctx)
		}
	}
}

// An attempt that can still answer says what it kept; one the server gave
// up on, or could not hear, leaves it to the last checkpoint.
func TestHandsOnOnlyWhenItCanStillAnswer(t *testing.T) {
	if !handsOn(context.Background()) {
		t.Error("a running attempt: handsOn = false")
	}
	for cause, want := range map[error]bool{
		errAttemptTimeout:                          true,
		context.DeadlineExceeded:                   true,
		serviceerror.NewNotFound("timed out"):      false,
		serviceerror.NewUnavailable("refused"):     false,
		errors.New("some other heartbeat failure"): false,
	} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		if got := handsOn(ctx); got != want {
			t.Errorf("canceled by %v: handsOn = %v, want %v", cause, got, want)
		}
	}
}
