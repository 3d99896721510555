package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// runStaged checks and stages a large batch's URLs, runs its parts, and
// writes its results to the blob store.
func runStaged(ctx workflow.Context, s Settings, prefix string, strict bool, progress *Progress, attrs *countAttrs) (*Output, error) {
	info := workflow.GetInfo(ctx)
	var f *activities.Fetcher
	lay := layoutBefore
	if workflow.GetVersion(ctx, "chunks-of-500", workflow.DefaultVersion, 1) == 1 {
		lay = layoutNow
	}
	if lay == layoutNow && len(s.URLs) > 0 && len(s.URLs) <= InlineLimit &&
		workflow.GetVersion(ctx, "small-staged-chunks", workflow.DefaultVersion, 1) == 1 {
		// A batch staged for its process step or its earlier results,
		// not its size: chunks that make its progress move in about
		// ChunksPerPart steps (one chunk of 500 would move it once, at
		// the end), all in this workflow.
		lay.chunkSize = smallStagedChunk(len(s.URLs), lay.chunksPerPart)
	}
	var staged activities.StageResult
	previousFile := s.PreviousFile
	if s.Incremental != "" {
		previousFile = IncrementalKey(s.Incremental)
	}
	if err := workflow.ExecuteActivity(housekeeping(ctx, 30*time.Minute, 5, "check and stage URLs"), f.StageURLs, activities.StageRequest{
		Prefix: prefix, URLs: s.URLs, URLsFile: s.URLsFile, ChunkSize: lay.chunkSize,
		Previous: s.Previous, PreviousFile: previousFile, PreviousOptional: s.Incremental != "",
		Request: s.Request, Requests: s.PerURL,
	}).Get(ctx, &staged); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == InvalidInputType {
			return nil, temporal.NewNonRetryableApplicationError(appErr.Message(), InvalidInputType, nil)
		}
		return nil, err
	}
	progress.Total = staged.Count
	s.URLs = nil     // the chunks read their URLs from the blob store
	s.Previous = nil // and what the earlier results said of them
	if s.PerURL != nil && s.Request == nil {
		// The chunks' files say how their URLs are asked for: only a
		// fetch worker that reads that takes them (activities.Asked).
		s.Request = &activities.Request{}
	}
	s.PerURL = nil // and how each is asked for

	var failure *Result
	var known []activities.IndexedResult
	var failed []activities.FailedChunks
	if staged.Chunks <= lay.chunksPerPart {
		e := newEngine(ctx, s, prefix, lay.chunkSize, staged.Count, lay.chunksInFlight, true, strict, progress)
		e.prevParts = staged.PrevParts
		e.attrs = attrs
		e.run(ctx, stagedChunks(lay.chunkSize, 0, staged.Chunks, staged.Count))
		failure, known, failed = e.failure, e.known, e.unrecorded
	} else {
		var err error
		if failure, known, failed, err = runParts(ctx, s, prefix, lay, staged, strict, progress, attrs); err != nil {
			return nil, err
		}
	}

	bg, _ := workflow.NewDisconnectedContext(ctx)
	var assembled activities.AssembleResult
	if err := workflow.ExecuteActivity(housekeeping(bg, 30*time.Minute, 10, "write results"), f.AssembleResults, activities.AssembleRequest{
		Prefix: prefix, Chunks: staged.Chunks, ChunkSize: lay.chunkSize,
		Dest: ResultsKey(info.WorkflowExecution.RunID), Known: known, Failed: failed,
		Compare: s.Compare, PrevParts: staged.PrevParts, Carry: s.Process != "",
	}).Get(bg, &assembled); err != nil {
		return nil, fmt.Errorf("writing results: %w", err)
	}
	out := &Output{OK: assembled.OK, Failed: assembled.Failed, Total: staged.Count, ResultsFile: assembled.Key, BlobStore: assembled.Store, Canceled: assembled.Canceled}
	if s.Compare {
		out.NotModified, out.Changed = &assembled.NotModified, &assembled.Changed
	}
	out.PreviousError = staged.PreviousError
	out.Failures = assembled.Failures
	if s.Incremental != "" && ctx.Err() == nil && failure == nil {
		// The next batch of the chain compares with this one. A batch
		// that failed or was canceled leaves the last complete one's.
		if err := workflow.ExecuteActivity(housekeeping(bg, 30*time.Minute, 10, "keep results for the next run"), f.CopyBlob, activities.CopyRequest{
			From: assembled.Key, To: IncrementalKey(s.Incremental),
		}).Get(bg, nil); err != nil {
			// The batch's own results stand; the next run compares with
			// the last ones kept.
			workflow.GetLogger(ctx).Error("keeping the results for the next run failed", "incremental", s.Incremental, "error", err)
		}
	}
	*progress = Progress{Total: staged.Count, Done: staged.Count, OK: out.OK, Failed: out.Failed, MaxInFlight: s.MaxInFlight, Recent: progress.Recent}
	return finish(ctx, failure, out)
}

// housekeeping is the options of the batch's own activities (staging,
// results, cleanup): on the fetch task queue, heartbeating, retried.
func housekeeping(ctx workflow.Context, timeout time.Duration, attempts int32, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           workflow.GetInfo(ctx).TaskQueueName,
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: attempts},
		Summary:             summary,
	})
}

// smallStagedChunk is the chunk size of a staged batch of n URLs (at most
// InlineLimit) that makes at most parts chunks, of at least 10 URLs: each
// chunk costs its activities, about a dozen history events.
func smallStagedChunk(n, parts int) int {
	return min(StagedChunkSize, max(10, (n+parts-1)/parts))
}
