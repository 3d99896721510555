package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// chunk is a run of consecutive URLs fetched by one activity.
type chunk struct {
	index int // chunk number in the batch
	first int // index of its first URL
	n     int
	urls  []activities.URLTask // inline batches only
}

// engine runs chunks: each is fetched on the fetch task queue, then hashed
// on the CPU task queue, with at most max_in_flight fetches at once.
// Workflow coroutines share it without locks (they never run at once).
type engine struct {
	s          Settings
	prefix     string
	fetchQueue string
	staged     bool
	conc       int // URLs fetched at once within a chunk
	progress   *Progress
	results    []Result // inline batches: every URL's result
	// known holds the final results a staged batch cannot find in its
	// chunk files (chunks whose activities ended early).
	known       []activities.IndexedResult
	failure     *Result // the URL that stopped a fail_fast batch
	onChunkDone func()

	slots    int // fetch slots held by running chunks
	running  int // chunks being worked on
	stopping bool
}

func newEngine(ctx workflow.Context, s Settings, prefix string, chunkSize int, staged bool, progress *Progress) *engine {
	share := (s.MaxInFlight + chunksInFlight - 1) / chunksInFlight
	return &engine{
		s:          s,
		prefix:     prefix,
		fetchQueue: workflow.GetInfo(ctx).TaskQueueName,
		staged:     staged,
		conc:       max(1, min(chunkSize, share)),
		progress:   progress,
	}
}

// run works every chunk and returns when all are done, or stopped.
func (e *engine) run(ctx workflow.Context, chunks []chunk) {
	runCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	// Waiting goes on after a cancel: siblings confirm their cancellation.
	bg, _ := workflow.NewDisconnectedContext(ctx)
	for _, ch := range chunks {
		w := min(e.conc, ch.n)
		if err := workflow.Await(runCtx, func() bool {
			return e.stopping || (e.slots+w <= e.s.MaxInFlight && e.running < maxPending)
		}); err != nil || e.stopping {
			break
		}
		e.slots += w
		e.running++
		e.progress.InFlight += w
		workflow.Go(runCtx, func(ctx workflow.Context) {
			defer func() {
				e.running--
				if e.onChunkDone != nil {
					e.onChunkDone()
				}
			}()
			e.runChunk(ctx, ch, w, cancel)
		})
	}
	_ = workflow.Await(bg, func() bool { return e.running == 0 })
}

func (e *engine) runChunk(ctx workflow.Context, ch chunk, w int, stopAll func()) {
	var f *activities.Fetcher
	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           e.fetchQueue,
		ActivityID:          fmt.Sprintf("fetch-%d", ch.index),
		StartToCloseTimeout: e.chunkTimeout(ch.n, w),
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: true,
		// Per-URL retries happen inside the activity; these retries are
		// for the activity itself (a worker lost mid-chunk), and resume
		// from its checkpoint.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
		Summary:     e.summary("GET", ch),
	})
	var fetched activities.FetchChunkResult
	err := workflow.ExecuteActivity(fetchCtx, f.FetchChunk, activities.FetchChunkRequest{
		Prefix: e.prefix, Chunk: ch.index, URLs: ch.urls, First: ch.first, Concurrency: w,
		Policy: activities.Policy{
			AttemptTimeout: e.s.AttemptTimeout, URLTimeout: e.s.URLTimeout, MaxAttempts: e.s.MaxAttempts,
			InitialBackoff: e.s.InitialBackoff, FailFast: e.s.FailFast,
		},
	}).Get(ctx, &fetched)
	e.slots -= w
	e.progress.InFlight -= w
	if err != nil {
		var canceled *temporal.CanceledError
		if !errors.As(err, &canceled) || !canceled.HasDetails() || canceled.Details(&fetched) != nil || len(fetched.Items) != ch.n {
			fetched.Items = e.failedItems(ch, err)
		}
		e.finishEarly(ch, fetched.Items)
		return
	}
	if e.s.FailFast {
		for _, it := range fetched.Items {
			if it.Outcome != "" && it.Outcome != OutcomeCanceled {
				e.stop(it.Final(), stopAll)
				e.finishEarly(ch, fetched.Items)
				return
			}
		}
	}

	var h *activities.Hasher
	hashCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           e.s.CPUTaskQueue,
		ActivityID:          fmt.Sprintf("hash-%d", ch.index),
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
		Summary:             e.summary("sha256", ch),
	})
	var hashed activities.HashChunkResult
	if err := workflow.ExecuteActivity(hashCtx, h.HashChunk, activities.HashChunkRequest{
		Prefix: e.prefix, Chunk: ch.index, Items: fetched.Items, Staged: e.staged,
	}).Get(ctx, &hashed); err != nil {
		msg := "canceled"
		outcome := OutcomeCanceled
		var canceled *temporal.CanceledError
		if !errors.As(err, &canceled) {
			outcome, msg = OutcomeError, "hashing: "+err.Error()
		}
		for i := range fetched.Items {
			if fetched.Items[i].Outcome == "" {
				fetched.Items[i].Outcome, fetched.Items[i].Error = outcome, msg
			}
		}
		e.finishEarly(ch, fetched.Items)
		return
	}
	if !e.staged {
		for i, r := range hashed.Results {
			e.results[ch.first+i] = r
		}
	}
	e.count(ch.n, hashed.OK)
	if e.s.FailFast && hashed.FirstFailed != nil {
		e.stop(*hashed.FirstFailed, stopAll)
	}
}

// finishEarly records a chunk that ends without hashing: items that got
// no further than their fetch are canceled.
func (e *engine) finishEarly(ch chunk, items []activities.Fetched) {
	for _, it := range items {
		if it.Outcome == "" {
			it.Outcome, it.Error = OutcomeCanceled, "canceled before hashing"
		}
		r := it.Final()
		if e.staged {
			if r.Outcome != OutcomeCanceled {
				e.known = append(e.known, activities.IndexedResult{Index: it.Index, Result: r})
			}
		} else {
			e.results[it.Index] = r
		}
	}
	e.count(len(items), 0)
}

// failedItems describes a chunk whose fetch activity ended with an error
// and no word on its URLs.
func (e *engine) failedItems(ch chunk, err error) []activities.Fetched {
	outcome, msg := Classify(err)
	items := make([]activities.Fetched, ch.n)
	for i := range items {
		items[i] = activities.Fetched{Index: ch.first + i, Outcome: outcome, Error: msg}
		if ch.urls != nil {
			items[i].URL = ch.urls[i].URL
		}
	}
	// A staged chunk's URLs are in its file, not here: the results file
	// fills them in.
	return items
}

func (e *engine) count(n, ok int) {
	e.progress.Done += n
	e.progress.OK += ok
	e.progress.Failed += n - ok
}

func (e *engine) stop(r Result, stopAll func()) {
	if e.stopping {
		return
	}
	e.stopping = true
	e.failure = &r
	stopAll()
}

// chunkTimeout bounds one attempt of a fetch chunk: every URL may use its
// whole budget, concurrency at a time. Heartbeats catch a lost worker long
// before this.
func (e *engine) chunkTimeout(n, conc int) time.Duration {
	perURL := e.s.URLTimeout
	if perURL == 0 {
		p := activities.Policy{InitialBackoff: e.s.InitialBackoff}
		for i := 1; i <= e.s.MaxAttempts; i++ {
			perURL += e.s.AttemptTimeout + time.Minute // room for a Retry-After
			if i < e.s.MaxAttempts {
				perURL += p.Backoff(i)
			}
		}
	}
	waves := time.Duration((n + conc - 1) / conc)
	return min(waves*perURL+5*time.Minute, MaxDuration)
}

func (e *engine) summary(verb string, ch chunk) string {
	if ch.n == 1 && ch.urls != nil {
		return verb + " " + activities.Redact(ch.urls[0].URL)
	}
	return fmt.Sprintf("%s URLs %d to %d", verb, ch.first+1, ch.first+ch.n)
}

// Classify maps an activity's final error to an outcome and a message.
func Classify(err error) (outcome, message string) {
	var canceledErr *temporal.CanceledError
	var timeoutErr *temporal.TimeoutError
	switch {
	case errors.As(err, &canceledErr):
		return OutcomeCanceled, "canceled"
	case errors.As(err, &timeoutErr):
		return OutcomeTimeout, "activity timed out: " + timeoutErr.Error()
	default:
		return OutcomeError, err.Error()
	}
}
