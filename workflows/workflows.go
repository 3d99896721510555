// Package workflows holds the BatchFetch workflow: it fetches a list of URLs
// as activities on the fetch task queue, hashes each body on the CPU task
// queue, and waits for them as one group.
//
// Start it from Go like any workflow:
//
//	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue},
//		workflows.BatchFetch, workflows.Input{URLs: urls, Mode: workflows.ModeFailFast})
//	var out workflows.Output
//	err = run.Get(ctx, &out)
package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// Names scripts and workers depend on.
const (
	// WorkflowName is the workflow type.
	WorkflowName = "BatchFetch"
	// TaskQueue serves the workflow and its fetch activities.
	TaskQueue = "batchfetch"
	// CPUTaskQueue serves the hash activities.
	CPUTaskQueue = "batchfetch-cpu"
	// ProgressQuery returns a Progress.
	ProgressQuery = "progress"

	ModeCollect  = "collect"
	ModeFailFast = "fail_fast"

	// ErrInvalidInput is the ApplicationError type of a rejected input.
	ErrInvalidInput = "InvalidInput"
	// ErrBatchFailed is the ApplicationError type of a fail_fast batch that
	// stopped; its message names the URL and its details hold the Output.
	ErrBatchFailed = "BatchFailed"
)

// Outcomes of one URL.
const (
	OutcomeOK        = "ok"
	OutcomeHTTPError = "http_error"
	OutcomeTimeout   = "timeout"
	OutcomeError     = "error"
	OutcomeCanceled  = "canceled"
)

// Result is what happened to one URL.
type Result struct {
	URL       string `json:"url"`
	Outcome   string `json:"outcome"`
	Status    int    `json:"status"`
	SHA256    string `json:"sha256,omitempty"`
	Size      int64  `json:"size"`
	Attempts  int    `json:"attempts"`
	ElapsedMS int64  `json:"elapsed_ms"`
	Error     string `json:"error,omitempty"`
}

// Output is the workflow's result: one Result per input URL, in input order.
type Output struct {
	Results []Result `json:"results"`
	OK      int      `json:"ok"`
	Failed  int      `json:"failed"`
}

// Progress is the answer to the progress query.
type Progress struct {
	Total    int `json:"total"`
	Done     int `json:"done"`
	OK       int `json:"ok"`
	Failed   int `json:"failed"`
	InFlight int `json:"in_flight"`
}

// heartbeatTimeout is how long a silent activity attempt is trusted; the
// activities heartbeat every second.
const heartbeatTimeout = 10 * time.Second

// maxPending bounds the URLs being worked on at once (each has one pending
// activity: its fetch or its hash), so hashes queued behind a busy CPU
// worker cannot pile up pending activities without limit.
const maxPending = 500

// hashTimeout bounds one hash attempt (a 1 GiB body takes a few seconds).
const hashTimeout = 10 * time.Minute

// BlobPrefix is where a run's bodies are kept in the blob store.
func BlobPrefix(runID string) string { return "batches/" + runID }

// BatchFetch fetches every URL of the input and hashes each body.
func BatchFetch(ctx workflow.Context, in Input) (*Output, error) {
	s, err := in.Validate()
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrInvalidInput, nil)
	}
	info := workflow.GetInfo(ctx)
	b := &batch{
		s:        s,
		prefix:   BlobPrefix(info.WorkflowExecution.RunID),
		queue:    info.TaskQueueName,
		results:  make([]Result, len(s.URLs)),
		progress: Progress{Total: len(s.URLs)},
	}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return b.progress, nil }); err != nil {
		return nil, err
	}
	logger := workflow.GetLogger(ctx)
	logger.Info("batch started", "urls", len(s.URLs), "mode", in.Mode, "max_in_flight", s.MaxInFlight)

	runCtx, cancelRun := workflow.WithCancel(ctx)
	// Waiting and cleaning up go on after a cancel of the workflow.
	bg, _ := workflow.NewDisconnectedContext(ctx)

	next := 0
	for ; next < len(s.URLs); next++ {
		if err := workflow.Await(runCtx, func() bool { return b.stopping || (b.progress.InFlight < s.MaxInFlight && b.running < maxPending) }); err != nil || b.stopping {
			break
		}
		i := next
		b.progress.InFlight++
		b.running++
		workflow.Go(runCtx, func(ctx workflow.Context) {
			defer func() { b.running-- }()
			b.fetchOne(ctx, i)
			if b.s.FailFast && !b.stopping && b.results[i].Outcome != OutcomeOK {
				b.stopping = true
				b.failed = i
				cancelRun()
			}
		})
	}
	_ = workflow.Await(bg, func() bool { return b.running == 0 })
	cancelRun()
	for ; next < len(s.URLs); next++ { // never started: canceled
		b.results[next] = Result{URL: s.URLs[next], Outcome: OutcomeCanceled, Error: "not started: batch stopped"}
		b.progress.Done++
		b.progress.Failed++
	}

	cleanup := workflow.WithActivityOptions(bg, workflow.ActivityOptions{
		TaskQueue:           b.queue,
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 10},
		Summary:             "remove blobs " + b.prefix,
	})
	var f *activities.Fetcher
	if err := workflow.ExecuteActivity(cleanup, f.RemoveBlobs, b.prefix).Get(bg, nil); err != nil {
		logger.Error("removing blobs failed", "prefix", b.prefix, "error", err)
	}

	out := &Output{Results: b.results, OK: b.progress.OK, Failed: b.progress.Failed}
	if ctx.Err() != nil {
		return nil, temporal.NewCanceledError(fmt.Sprintf("batch canceled: %d of %d URLs done", out.OK+out.Failed, len(s.URLs)))
	}
	if b.stopping {
		r := b.results[b.failed]
		msg := fmt.Sprintf("%s failed (%s", r.URL, r.Outcome)
		if r.Status != 0 {
			msg += " " + strconv.Itoa(r.Status)
		}
		msg += "): " + r.Error
		return nil, temporal.NewNonRetryableApplicationError(msg, ErrBatchFailed, nil, out)
	}
	logger.Info("batch done", "ok", out.OK, "failed", out.Failed)
	return out, nil
}

// batch is the state of one run; workflow coroutines share it without
// locks (they never run at the same time).
type batch struct {
	s        Settings
	prefix   string
	queue    string
	results  []Result
	progress Progress
	running  int  // URL coroutines alive
	stopping bool // fail_fast tripped
	failed   int  // index of the URL that tripped it
}

func (b *batch) fetchOne(ctx workflow.Context, i int) {
	url := b.s.URLs[i]
	start := workflow.Now(ctx)
	r := &b.results[i]
	*r = Result{URL: url}
	defer func() {
		r.ElapsedMS = workflow.Now(ctx).Sub(start).Milliseconds()
		b.progress.Done++
		if r.Outcome == OutcomeOK {
			b.progress.OK++
		} else {
			b.progress.Failed++
		}
	}()

	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              b.queue,
		ActivityID:             "fetch-" + strconv.Itoa(i),
		StartToCloseTimeout:    b.s.AttemptTimeout,
		ScheduleToCloseTimeout: b.s.URLTimeout,
		HeartbeatTimeout:       heartbeatTimeout,
		WaitForCancellation:    true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    b.s.InitialBackoff,
			BackoffCoefficient: 2,
			MaximumAttempts:    int32(b.s.MaxAttempts),
		},
		Summary: "GET " + url,
	})
	var f *activities.Fetcher
	var fetched activities.FetchResult
	err := workflow.ExecuteActivity(fetchCtx, f.Fetch, activities.FetchRequest{
		URL:  url,
		Blob: fmt.Sprintf("%s/%06d", b.prefix, i),
	}).Get(ctx, &fetched)
	b.progress.InFlight--
	if err != nil {
		describeFailure(r, err, b.s.MaxAttempts)
		return
	}
	r.Status, r.Size, r.Attempts = fetched.Status, fetched.Size, int(fetched.Attempt)

	hashCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           b.s.CPUTaskQueue,
		ActivityID:          "hash-" + strconv.Itoa(i),
		StartToCloseTimeout: hashTimeout,
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumAttempts: 5},
		Summary:             "sha256 " + url,
	})
	var h *activities.Hasher
	var hashed activities.HashResult
	if err := workflow.ExecuteActivity(hashCtx, h.Hash, activities.HashRequest{Blob: fetched.Blob}).Get(ctx, &hashed); err != nil {
		attempts := r.Attempts
		describeFailure(r, err, 0)
		r.Status, r.Attempts = fetched.Status, attempts
		r.Error = "hashing: " + r.Error
		return
	}
	r.Outcome, r.SHA256, r.Size = OutcomeOK, hashed.SHA256, hashed.Size
}

// describeFailure fills a Result from an activity's final error.
func describeFailure(r *Result, err error, maxAttempts int) {
	r.Outcome, r.Error = Classify(err)
	var details activities.FailureDetails
	var appErr *temporal.ApplicationError
	var timeoutErr *temporal.TimeoutError
	var actErr *temporal.ActivityError
	switch {
	case errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&details) == nil:
		r.Status, r.Attempts = details.Status, int(details.Attempt)
	case errors.As(err, &timeoutErr):
		var p activities.Progress
		if timeoutErr.HasLastHeartbeatDetails() && timeoutErr.LastHeartbeatDetails(&p) == nil {
			r.Attempts = int(p.Attempt)
		}
		if errors.As(err, &actErr) && actErr.RetryState() == enumspb.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED {
			r.Attempts = maxAttempts
		}
		if r.Attempts == 0 {
			r.Attempts = 1
		}
	}
}

// Classify maps an activity's final error to an outcome and a message.
func Classify(err error) (outcome, message string) {
	var appErr *temporal.ApplicationError
	var timeoutErr *temporal.TimeoutError
	var canceledErr *temporal.CanceledError
	switch {
	case errors.As(err, &canceledErr):
		return OutcomeCanceled, "canceled"
	case errors.As(err, &timeoutErr):
		return OutcomeTimeout, timeoutMessage(timeoutErr)
	case errors.As(err, &appErr):
		if appErr.Type() == activities.ErrHTTPStatus {
			return OutcomeHTTPError, appErr.Message()
		}
		return OutcomeError, appErr.Message()
	default:
		return OutcomeError, err.Error()
	}
}

func timeoutMessage(err *temporal.TimeoutError) string {
	switch err.TimeoutType() {
	case enumspb.TIMEOUT_TYPE_START_TO_CLOSE:
		return "attempt timed out (attempt_timeout)"
	case enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
		return "URL timed out (url_timeout)"
	case enumspb.TIMEOUT_TYPE_HEARTBEAT:
		return "worker stopped responding (heartbeat timeout)"
	default:
		return err.Error()
	}
}
