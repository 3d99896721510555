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
// are the backstop for a worker that was lost.
const serverGrace = 5 * time.Second

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
		StartToCloseTimeout: s.AttemptTimeout + serverGrace,
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
	prior := 0
	var since time.Time
	for series := 1; ; series++ {
		opts := urlActivityOptions(e.s, e.fetchQueue, ch, e.summary("GET", ch))
		if series == 1 {
			since = workflow.Now(ctx)
		} else {
			opts.ActivityID = fmt.Sprintf("url-%d.%d", ch.first+1, series)
			if e.s.URLTimeout > 0 { // the URL's budget runs on
				opts.ScheduleToCloseTimeout = e.s.URLTimeout + serverGrace - workflow.Now(ctx).Sub(since)
			}
		}
		err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), f.FetchURL, activities.FetchURLRequest{
			Prefix: e.prefix, Task: t, PriorAttempts: prior, Since: since,
			Policy: activities.Policy{
				AttemptTimeout: e.s.AttemptTimeout, URLTimeout: e.s.URLTimeout, MaxAttempts: e.s.MaxAttempts,
				InitialBackoff: e.s.InitialBackoff, FailFast: e.s.FailFast,
			},
		}).Get(ctx, &fetched)
		if err == nil {
			return fetched, false
		}
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			if !canceled.HasDetails() || canceled.Details(&fetched) != nil || len(fetched.Items) != 1 {
				fetched.Items = e.failedItems(ch, OutcomeCanceled, "canceled")
			}
			e.finishEarly(ch, fetched.Items)
			return fetched, true
		}
		// The URL's word is in the last attempt's error.
		var word activities.Fetched
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() != activities.WorkerStoppingType && appErr.HasDetails() && appErr.Details(&word) == nil {
			word.Index, word.URL = t.Index, t.URL
			fetched.Items = []activities.Fetched{word}
			return fetched, false
		}
		// Every attempt went to a worker that was lost, or stopped: they
		// said nothing of the URL. Unless its url_timeout has passed, the
		// URL gets a new activity, its attempts counted on.
		prior += e.s.MaxAttempts
		var timeout *temporal.TimeoutError
		lost := errors.As(err, &timeout) && timeout.TimeoutType() != enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE ||
			errors.As(err, &appErr) && appErr.Type() == activities.WorkerStoppingType
		budget := e.s.URLTimeout == 0 || workflow.Now(ctx).Sub(since) < e.s.URLTimeout
		if lost && budget && series < lostSeries {
			workflow.GetLogger(ctx).Warn("every attempt of a URL went to a lost worker; starting it anew", "url", ch.first+1, "series", series)
			continue
		}
		outcome, msg := Classify(err)
		fetched.Items = []activities.Fetched{{Index: t.Index, URL: t.URL, Outcome: outcome, Error: msg, Attempts: prior}}
		return fetched, false
	}
}
