// Package workflows holds the BatchFetch workflow: it fetches a list of URLs
// on the fetch task queue, hashes each body on the CPU task queue, and
// waits for them as one group.
//
// Start it from Go like any workflow:
//
//	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue},
//		workflows.BatchFetch, workflows.Input{URLs: urls, Mode: workflows.ModeFailFast})
//	var out workflows.Output
//	err = run.Get(ctx, &out)
//
// # How a batch is split
//
// URLs are fetched in chunks, each one activity that applies the per-URL
// timeouts and retry policy itself (so each URL keeps its own attempts and
// outcome) and heartbeats a checkpoint (so a retried chunk resumes). A
// batch of up to InlineLimit URLs is split into at most 100 chunks (one URL
// per chunk for up to 100 URLs) and returns its results inline. A larger
// batch is staged: its URLs are checked and written to chunk files of
// StagedChunkSize URLs in the blob store, parts of ChunksPerPart chunks run
// as child workflows one after another, and the results are written as
// JSON lines to the blob store (Output.ResultsFile). No run comes near
// Temporal's history or pending-activity limits.
package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// Names scripts and workers depend on.
const (
	// WorkflowName is the workflow type.
	WorkflowName = "BatchFetch"
	// PartWorkflowName is the child workflow of a large batch.
	PartWorkflowName = "BatchFetchPart"
	// TaskQueue serves the workflow and its fetch activities.
	TaskQueue = "batchfetch"
	// CPUTaskQueue serves the hash activities.
	CPUTaskQueue = "batchfetch-cpu"
	// ProgressQuery returns a Progress.
	ProgressQuery = "progress"

	ModeCollect  = "collect"
	ModeFailFast = "fail_fast"

	// InvalidInputType is the ApplicationError type of a rejected input.
	InvalidInputType = activities.InvalidInputType
	// BatchFailedType is the ApplicationError type of a fail_fast batch
	// that stopped; its message names the URL and its details hold the
	// Output.
	BatchFailedType = "BatchFailed"

	// ErrInvalidInput is InvalidInputType.
	//
	// Deprecated: use InvalidInputType.
	ErrInvalidInput = InvalidInputType
	// ErrBatchFailed is BatchFailedType.
	//
	// Deprecated: use BatchFailedType.
	ErrBatchFailed = BatchFailedType
)

// Outcomes of one URL.
const (
	OutcomeOK        = activities.OutcomeOK
	OutcomeHTTPError = activities.OutcomeHTTPError
	OutcomeTimeout   = activities.OutcomeTimeout
	OutcomeError     = activities.OutcomeError
	OutcomeCanceled  = activities.OutcomeCanceled
	// OutcomeNotModified is a success: the server said the body had not
	// changed since the earlier result (previous).
	OutcomeNotModified = activities.OutcomeNotModified
	// OutcomeRobotsDisallowed is a failure, never retried: the URL's
	// host's robots.txt disallows it for the batch's User-Agent, or
	// could not be fetched (robots: "obey"). The URL was not requested.
	OutcomeRobotsDisallowed = activities.OutcomeRobotsDisallowed
)

// Sizes of the split. Changing any of them changes the commands a run
// issues (which activities, how many, with what input): a running batch
// would then fail to replay on the new code. Guard such a change with
// workflow.GetVersion, as strictOutcomes and nativeRetries do, and record
// a new history for the replay test. The progress cadence (progressEvery)
// is one of them too.
const (
	// InlineLimit is the largest batch whose results come back inline.
	InlineLimit = 1000
	// InlineOutputBytes bounds the output of a batch whose results come
	// back inline (see inlineFits); a batch of longer URLs is staged.
	InlineOutputBytes = 1536 << 10
	// StagedChunkSize is the URLs per chunk of a larger batch.
	StagedChunkSize = 500
	// ChunksPerPart is the chunks one child workflow runs: 10,000 URLs.
	ChunksPerPart = 20
	// maxChunksInline bounds the chunks of an inline batch.
	maxChunksInline = 100
	// maxPending bounds the chunks being worked on at once (each has one
	// pending activity: its fetch or its hash), so hashes queued behind a
	// busy CPU worker cannot pile up pending activities.
	maxPending = 500
	// chunksInFlight is how many chunks of an inline batch share
	// max_in_flight (a staged batch's layout says for its own).
	chunksInFlight = 8
)

// layout is how a staged batch is split: URLs per chunk, chunks per part,
// how many chunks share max_in_flight, and how many chunks a part
// finishes between progress signals to its parent.
type layout struct {
	chunkSize, chunksPerPart, chunksInFlight, progressEvery int
}

var (
	// layoutNow: 500-URL chunks, 5 sharing max_in_flight. Every chunk
	// costs the server two activities and their workflow tasks, whatever
	// its size, so a chunk five times larger costs a fifth per URL.
	layoutNow = layout{chunkSize: StagedChunkSize, chunksPerPart: ChunksPerPart, chunksInFlight: 5, progressEvery: 4}
	// layoutBefore is the split of batches started by earlier versions.
	layoutBefore = layout{chunkSize: 100, chunksPerPart: 100, chunksInFlight: chunksInFlight, progressEvery: progressEvery}
)

// stagedLayout is the split of a staged batch started with chunks of
// chunkSize URLs (0: by a version that did not say).
func stagedLayout(chunkSize int) layout {
	if chunkSize == layoutNow.chunkSize {
		return layoutNow
	}
	return layoutBefore
}

// Result is what happened to one URL.
type Result = activities.Result

// Output is the workflow's result. A batch of up to InlineLimit URLs has
// its Results inline, one per input URL in input order; a larger one has
// them in the blob store, as JSON lines in the same order, under ResultsFile.
type Output struct {
	Results     []Result `json:"results,omitempty"`
	OK          int      `json:"ok"`
	Failed      int      `json:"failed"`
	Total       int      `json:"total"`
	ResultsFile string   `json:"results_file,omitempty"`
	// Canceled is how many of the Failed were canceled (the batch was
	// canceled or stopped before they finished).
	Canceled int `json:"canceled,omitempty"`
	// BlobStore is the identity of the blob store holding ResultsFile
	// (see blobstore.ID): a reader on another store can tell.
	BlobStore string `json:"blob_store,omitempty"`
	// NotModified and Changed count the not_modified results (among OK)
	// and the results with changed true, failures among them (a page
	// that was ok and now fails), for a batch given earlier results.
	NotModified *int `json:"not_modified,omitempty"`
	Changed     *int `json:"changed,omitempty"`
	// PreviousError says why an incremental batch compared with no
	// earlier results although its chain left some: they cannot be read
	// (a torn last line after a crash). Every URL was fetched in full.
	PreviousError string `json:"previous_error,omitempty"`
	// Failures are the first FailureSample failed URLs in input order
	// (canceled ones left out), with their outcome and error (URL and
	// error clipped to 512 bytes), also when the results are in a file.
	Failures []Result `json:"failures,omitempty"`
}

// heartbeatTimeout is how long a silent activity attempt is trusted; the
// activities heartbeat every second.
const heartbeatTimeout = 10 * time.Second

// BlobPrefix is where a batch keeps its bodies and chunk files.
func BlobPrefix(runID string) string { return "batches/" + runID }

// ProcessedPrefix is where a batch's processor outputs too large for its
// results go (they outlive the batch, as its results file does).
func ProcessedPrefix(blobPrefix string) string {
	return "processed/" + strings.TrimPrefix(blobPrefix, "batches/")
}

// ResultsKey is where a large batch's results go.
func ResultsKey(runID string) string { return "results/" + runID + ".jsonl" }

// BatchFetch fetches every URL of the input and hashes each body.
func BatchFetch(ctx workflow.Context, in Input) (*Output, error) {
	// Deferred first, so it runs last: after the batch's own blobs are gone.
	defer releaseInputs(ctx, in, workflow.GetSignalChannel(ctx, AdoptInputsSignal))
	s, err := in.Validate()
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), InvalidInputType, nil)
	}
	info := workflow.GetInfo(ctx)
	prefix := BlobPrefix(info.WorkflowExecution.RunID)
	progress := &Progress{Total: len(s.URLs), MaxInFlight: s.MaxInFlight}
	if err := workflow.SetQueryHandler(ctx, ProgressQuery, func() (Progress, error) { return progress.answer(), nil }); err != nil {
		return nil, err
	}
	logger := workflow.GetLogger(ctx)
	// Batches started before the memo existed replay without it.
	if workflow.GetVersion(ctx, "memo", workflow.DefaultVersion, 1) == 1 {
		mode := ModeCollect
		if s.FailFast {
			mode = ModeFailFast
		}
		// Shown in the Web UI's list of workflows and its Memo tab.
		memo := map[string]any{"mode": mode, "max_in_flight": s.MaxInFlight}
		if workflow.GetVersion(ctx, "memo-urls-number", workflow.DefaultVersion, 1) == 1 {
			// urls is a number; a file-backed list says which file
			// (its count is known once it is staged: the progress query).
			if s.URLsFile != "" {
				memo["urls_file"] = s.URLsFile
			} else {
				memo["urls"] = len(s.URLs)
			}
		} else {
			size := strconv.Itoa(len(s.URLs))
			if s.URLsFile != "" {
				size = "file " + s.URLsFile
			}
			memo["urls"] = size
		}
		if err := workflow.UpsertMemo(ctx, memo); err != nil {
			return nil, err
		}
	}
	bg, _ := workflow.NewDisconnectedContext(ctx)
	defer func() {
		var f *activities.Fetcher
		if err := workflow.ExecuteActivity(housekeeping(bg, 5*time.Minute, 10, "remove "+prefix), f.RemoveBlobs, prefix).Get(bg, nil); err != nil {
			logger.Error("removing blobs failed", "prefix", prefix, "error", err)
		}
	}()

	strict := strictOutcomes(ctx)
	if !builtinProcess(s.Process) {
		// A processor of a team's own: some CPU worker must have it.
		var h *activities.Hasher
		checkCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue:           s.CPUTaskQueue,
			StartToCloseTimeout: time.Minute,
			// A CPU worker without the step says so; another of the
			// queue may have it.
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 1, MaximumAttempts: 20},
			Summary:     "check process " + s.Process,
		})
		if err := workflow.ExecuteActivity(checkCtx, h.CheckProcess, s.Process).Get(ctx, nil); err != nil {
			return nil, temporal.NewNonRetryableApplicationError("process: "+PlainMessage(cause(err)), InvalidInputType, nil)
		}
	}
	attrs := newCountAttrs(ctx)
	var out *Output
	if s.runsInline(strict) {
		out, err = runInline(ctx, s, prefix, strict, progress, attrs)
	} else {
		out, err = runStaged(ctx, s, prefix, strict, progress, attrs)
	}
	showDetails(ctx, *progress)
	attrs.update(ctx, *progress, true)
	return out, err
}

// strictOutcomes tells whether this run records every failure of a chunk,
// a hash or a part as the failure of exactly its URLs (and stops a
// fail_fast batch on it). Runs started before that version replay as they
// ran: a failed chunk's URLs read as canceled there.
func strictOutcomes(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "strict-outcomes", workflow.DefaultVersion, 1) == 1
}

// finish turns a stopped or canceled batch into the workflow's error. Both
// carry the Output in their details: what was done before the batch
// stopped stays done. CanceledOutput reads it from a canceled batch's
// error.
func finish(ctx workflow.Context, failure *Result, out *Output) (*Output, error) {
	if ctx.Err() != nil {
		return nil, temporal.NewCanceledError(fmt.Sprintf("batch canceled: %d of %d URLs ok", out.OK, out.Total), *out)
	}
	if failure != nil {
		r := *failure
		msg := fmt.Sprintf("%s failed (%s", r.URL, r.Outcome)
		if r.Status != 0 {
			msg += " " + strconv.Itoa(r.Status)
		}
		msg += "): " + r.Error
		return nil, temporal.NewNonRetryableApplicationError(msg, BatchFailedType, nil, out)
	}
	workflow.GetLogger(ctx).Info("batch done", "ok", out.OK, "failed", out.Failed)
	return out, nil
}

// CanceledOutput returns what a canceled batch had done (its results up to
// the cancel; URLs it never finished read as canceled), from the error its
// run returned. ok is false when err is no canceled batch, or one that
// carries no output (batches canceled before this version).
func CanceledOutput(err error) (out *Output, ok bool) {
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) || !canceled.HasDetails() {
		return nil, false
	}
	var msg string
	out = &Output{}
	if canceled.Details(&msg, out) != nil || out.Total == 0 {
		return nil, false
	}
	return out, true
}
