package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// serverGrace is how much later than the worker's own clocks the server's
// timers of a one-URL activity fire (StartToClose after attempt_timeout,
// ScheduleToClose after url_timeout). The worker ends an attempt at its
// limit and says why (the status, "attempt timed out"); the server's timers
// are the backstop for a worker that stopped answering (its heartbeats, every
// second, catch a lost worker within 10 s).
const serverGrace = 5 * time.Second

// slotWait is the room an attempt's start-to-close leaves for waiting for
// one of its worker's fetch slots, taken by other batches' chunks: that wait
// counts against url_timeout, not against attempt_timeout, as in a chunk.
const slotWait = time.Hour

// nativeRetries tells whether this run gives each URL of a small batch an
// activity retried by Temporal's own policy. Runs started before replay
// with the chunk activity, which retries inside.
func nativeRetries(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "native-url-retries", workflow.DefaultVersion, 1) == 1
}

// urlActivityOptions are a one-URL activity's: its attempt is one HTTP
// attempt, its retry policy the URL's.
func urlActivityOptions(s Settings, fetchQueue string, ch chunk, summary string) workflow.ActivityOptions {
	opts := workflow.ActivityOptions{
		TaskQueue: fetchQueue,
		// The URL itself is not in the ID: IDs are stored as they are,
		// never through the payload codec. The summary names it.
		ActivityID:          fmt.Sprintf("url-%d", ch.first+1),
		StartToCloseTimeout: s.AttemptTimeout + serverGrace + slotWait,
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    max(s.InitialBackoff, time.Millisecond),
			BackoffCoefficient: 2,
			MaximumInterval:    time.Hour,
			MaximumAttempts:    int32(s.MaxAttempts),
		},
		Summary: summary,
	}
	if s.URLTimeout > 0 {
		opts.ScheduleToCloseTimeout = s.URLTimeout + serverGrace
		opts.StartToCloseTimeout = min(opts.StartToCloseTimeout, opts.ScheduleToCloseTimeout)
	}
	return opts
}

// lostSeries bounds how many times a URL is given a new activity because
// every attempt of the last one went to a worker that was lost (killed,
// frozen, cut off, stopped): as many as a chunk activity's own attempts.
const lostSeries = 10

// fetchURL fetches a one-URL chunk with FetchURL. stopped means the chunk
// has ended (canceled); otherwise fetched holds the URL's body or its final
// word.
func (e *engine) fetchURL(ctx workflow.Context, ch chunk) (fetched activities.FetchChunkResult, stopped bool) {
	t := ch.urls[0]
	var f *activities.Fetcher
	prior := 0 // attempts of earlier activities, lost with their workers
	var since time.Time
	var resume activities.Resume
	for series := 1; ; series++ {
		opts := urlActivityOptions(e.s, e.fetchQueue, ch, e.summary(e.verb(ch), ch))
		if !activities.MergeRequests(e.s.Request, t.R).Retriable() {
			// A POST that may reach the server is made once; the
			// activity says so of an attempt cut off with its worker.
			opts.RetryPolicy.MaximumAttempts = 1
		}
		if series == 1 {
			since = workflow.Now(ctx)
		} else {
			opts.ActivityID = fmt.Sprintf("url-%d.%d", ch.first+1, series)
			// The attempts left, and at least one: an attempt cut off
			// with its worker is made again, as in a chunk.
			opts.RetryPolicy.MaximumAttempts = int32(max(1, e.s.MaxAttempts-prior))
			if e.s.URLTimeout > 0 { // the URL's budget runs on
				opts.ScheduleToCloseTimeout = e.s.URLTimeout + serverGrace - workflow.Now(ctx).Sub(since)
			}
		}
		fetch := e.fetchName(ch, f.FetchURL, activities.FetchURLWithRequest, activities.FetchURLObeyingRobots)
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fetch, activities.FetchURLRequest{
			Prefix: e.prefix, Task: t, PriorAttempts: prior, Since: since, Resume: resume, Keep: e.s.KeepBodies, Request: e.s.Request,
			Policy: e.policy(),
		}).Get(ctx, &fetched)
		if err == nil {
			return fetched, false
		}
		elapsed := workflow.Now(ctx).Sub(since).Milliseconds()
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			if !canceled.HasDetails() || canceled.Details(&fetched) != nil || len(fetched.Items) != 1 {
				// Canceled while it waited to retry: its last attempt's
				// checkpoint says how far it got.
				word := activities.Fetched{Index: t.Index, URL: t.URL, Outcome: OutcomeCanceled, Error: "canceled", Attempts: prior, ElapsedMS: elapsed}
				var cp activities.URLCheckpoint
				if canceled.HasDetails() && canceled.Details(&cp) == nil && cp.Attempt > 0 {
					word.Attempts, word.Status = cp.Attempt, cp.Status
				}
				fetched.Items = []activities.Fetched{word}
			}
			e.finishEarly(ch, fetched.Items)
			return fetched, true
		}
		// The URL's word is in the last attempt's error.
		var word activities.Fetched
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() != activities.WorkerStoppingType && appErr.HasDetails() && appErr.Details(&word) == nil &&
			(word.Attempts > 0 || word.Outcome == OutcomeRobotsDisallowed) { // refused before any attempt
			word.Index, word.URL = t.Index, t.URL
			fetched.Items = []activities.Fetched{word}
			return fetched, false
		}
		// The last attempt said nothing of the URL: its worker was lost
		// (killed, frozen, cut off), stopped, or did not know FetchURL (a
		// worker of an earlier version); or no worker took the URL before
		// its url_timeout. Its checkpoint says which attempt it was and
		// what it kept of the body.
		var cp activities.URLCheckpoint
		var timeout *temporal.TimeoutError
		switch {
		case errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails() && timeout.LastHeartbeatDetails(&cp) == nil:
		case errors.As(err, &appErr) && appErr.Type() == activities.WorkerStoppingType && appErr.HasDetails() && appErr.Details(&cp) == nil:
		default:
			cp = activities.URLCheckpoint{}
		}
		attempts := prior
		if cp.Attempt > prior {
			attempts = cp.Attempt
		}
		budgetGone := errors.As(err, &timeout) &&
			(timeout.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE || timeout.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START) ||
			e.s.URLTimeout > 0 && workflow.Now(ctx).Sub(since) >= e.s.URLTimeout
		if budgetGone {
			word := activities.Fetched{Index: t.Index, URL: t.URL, Outcome: OutcomeTimeout, Error: "URL timed out (url_timeout)", Attempts: attempts, ElapsedMS: elapsed, Status: cp.Status}
			if cp.Error != "" {
				word.Error += " after: " + cp.Error
			}
			fetched.Items = []activities.Fetched{word}
			return fetched, false
		}
		// A retryable error without the URL's word (a worker stopping, one
		// of an earlier version without FetchURL, a canceled context) is an
		// attempt that said nothing of the URL, as a timeout is. A
		// non-retryable one is final.
		lost := errors.As(err, &timeout) ||
			errors.As(err, &appErr) && (appErr.Type() == activities.WorkerStoppingType || !appErr.NonRetryable())
		if cp.Attempt == 0 && lost {
			// No checkpoint: the server ran out of the series' attempts.
			attempts = prior + int(opts.RetryPolicy.MaximumAttempts)
			if opts.RetryPolicy.MaximumAttempts == 1 && notRegistered(err) {
				// A POST made once, given back by a worker of an earlier
				// release that does not know the activity: not sent.
				attempts = prior
			}
		}
		if lost && series < lostSeries {
			workflow.GetLogger(ctx).Warn("a URL's last attempt went to a worker that was lost; starting it anew", "url", ch.first+1, "series", series, "attempts", attempts)
			prior, resume = attempts, cp.Resume
			continue
		}
		outcome, msg := Classify(err)
		fetched.Items = []activities.Fetched{{Index: t.Index, URL: t.URL, Outcome: outcome, Error: msg, Attempts: max(attempts, 1), ElapsedMS: elapsed}}
		return fetched, false
	}
}

// notRegistered tells whether an activity failed because its worker does
// not know the activity's name (a worker of an earlier release): it made
// no request.
func notRegistered(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == "ActivityNotRegisteredError"
}
