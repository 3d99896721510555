package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// stagedChunks are the chunks from to to (exclusive) of a staged batch of
// count URLs in chunks of size.
func stagedChunks(size, from, to, count int) []chunk {
	var chunks []chunk
	for c := from; c < to; c++ {
		first := c * size
		chunks = append(chunks, chunk{index: c, first: first, base: first, n: min(size, count-first)})
	}
	return chunks
}

// PartInput is one child workflow's share of a large batch.
type PartInput struct {
	Prefix     string   `json:"prefix"`
	Part       int      `json:"part"`
	FirstChunk int      `json:"first_chunk"`
	EndChunk   int      `json:"end_chunk"`
	Count      int      `json:"count"`
	FetchQueue string   `json:"fetch_queue"`
	Settings   Settings `json:"Settings"` // the name running parts were started with
	// ChunkSize is the URLs per chunk; parts started before it was sent
	// have chunks of 100.
	ChunkSize int `json:"chunk_size,omitempty"`
	// PrevParts: the chunks have earlier results (see StageResult).
	PrevParts int `json:"prev_parts,omitempty"`
	// ParentID and ParentRunID name the parent in parts started before
	// the part read it from its own info; newer parents leave them empty.
	ParentID    string `json:"parent_id,omitempty"`
	ParentRunID string `json:"parent_run_id,omitempty"`
}

// PartOutput is what a part reports to its parent. Its size does not grow
// with the part: results are in the blob store, and Known holds at most
// the URL that stopped a fail_fast part.
type PartOutput struct {
	OK      int                        `json:"ok"`
	Failed  int                        `json:"failed"`
	Failure *Result                    `json:"failure,omitempty"`
	Known   []activities.IndexedResult `json:"known,omitempty"`
	// Unrecorded are chunks that failed and whose results file could not
	// be written (at most the part's ChunksPerPart).
	Unrecorded []activities.FailedChunks `json:"unrecorded,omitempty"`
	// Recent are the part's last failures (see Progress.Recent).
	Recent []Result `json:"recent,omitempty"`
	// Hosts are what the part's chunks said of their hosts (see
	// Progress.Hosts).
	Hosts *activities.HostsView `json:"hosts,omitempty"`
}

// partProgressSignal carries a running part's progress to its parent.
const partProgressSignal = "part-progress"

type partProgress struct {
	Part     int      `json:"part"`
	Progress Progress `json:"progress"`
}

// runParts runs a staged batch's parts as child workflows, one after
// another, each with the whole max_in_flight. A part that fails (it was
// terminated, timed out, or failed) does not end the batch in collect
// mode: its chunks without results get the part's error. In fail_fast
// mode it stops the batch.
func runParts(ctx workflow.Context, s Settings, prefix string, lay layout, staged activities.StageResult, strict bool, progress *Progress, attrs *countAttrs) (*Result, []activities.IndexedResult, []activities.FailedChunks, error) {
	info := workflow.GetInfo(ctx)
	base := Progress{Total: staged.Count, MaxInFlight: s.MaxInFlight}
	current := -1
	sig := workflow.GetSignalChannel(ctx, partProgressSignal)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var p partProgress
			if !sig.Receive(ctx, &p) {
				return
			}
			if p.Part == current {
				base.FetchSlots = p.Progress.FetchSlots // the part's workers, kept between parts
				base.Recent = mergeRecent(p.Progress.Recent, base.Recent)
				*progress = Progress{Total: base.Total, Done: base.Done + p.Progress.Done, OK: base.OK + p.Progress.OK,
					Failed: base.Failed + p.Progress.Failed, InFlight: p.Progress.InFlight, MaxInFlight: base.MaxInFlight, FetchSlots: base.FetchSlots, BacklogBytes: p.Progress.BacklogBytes,
					Recent: base.Recent, Hosts: mergeHosts(base.Hosts, p.Progress.Hosts.All())}
				showDetails(ctx, *progress)
				attrs.update(ctx, *progress, false)
			}
		}
	})
	var known []activities.IndexedResult
	var failed []activities.FailedChunks
	size := lay.chunkSize
	for from := 0; from < staged.Chunks; from += lay.chunksPerPart {
		to := min(from+lay.chunksPerPart, staged.Chunks)
		current = from / lay.chunksPerPart
		childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:          fmt.Sprintf("%s/part-%d", info.WorkflowExecution.ID, current),
			TaskQueue:           info.TaskQueueName,
			WaitForCancellation: true,
			StaticSummary:       fmt.Sprintf("chunks %d to %d", from, to-1),
		})
		var part PartOutput
		in := PartInput{
			Prefix: prefix, Part: current, FirstChunk: from, EndChunk: to, Count: staged.Count,
			FetchQueue: info.TaskQueueName, Settings: s,
		}
		if lay != layoutBefore {
			in.ChunkSize = size
		}
		in.PrevParts = staged.PrevParts
		err := workflow.ExecuteChildWorkflow(childCtx, PartWorkflowName, in).Get(ctx, &part)
		current = -1
		partNo := from / lay.chunksPerPart
		urls := min(to*size, staged.Count) - from*size
		if err != nil {
			if ctx.Err() != nil || !strict {
				return nil, known, failed, nil // canceled: the missing chunks read as canceled
			}
			// The part failed. Its chunks that finished have their results;
			// the others get its error (one record, whatever their size).
			outcome, msg := Classify(err)
			if outcome == OutcomeCanceled {
				msg = "part canceled: " + msg
			}
			msg = activities.TruncateError(fmt.Sprintf("part %d (URLs %d to %d) failed: %s", partNo, from*size+1, from*size+urls, msg))
			workflow.GetLogger(ctx).Error("part failed", "part", partNo, "error", err)
			failed = append(failed, activities.FailedChunks{From: from, To: to, Outcome: outcome, Error: msg})
			base.Done += urls
			base.Failed += urls // the results file has the exact counts
			noteFailed(&base, Result{URL: fmt.Sprintf("URLs %d to %d", from*size+1, from*size+urls), Outcome: outcome, Error: msg})
			*progress = base
			showDetails(ctx, *progress)
			attrs.update(ctx, *progress, false)
			if s.FailFast {
				return &Result{URL: fmt.Sprintf("URLs %d to %d", from*size+1, from*size+urls), Outcome: outcome, Error: msg}, known, failed, nil
			}
			continue
		}
		base.Done += urls
		base.OK += part.OK
		base.Failed += part.Failed
		base.Recent = mergeRecent(part.Recent, base.Recent)
		base.Hosts = mergeHosts(base.Hosts, part.Hosts.All())
		*progress = base
		showDetails(ctx, *progress)
		attrs.update(ctx, *progress, false)
		known = append(known, part.Known...)
		failed = append(failed, part.Unrecorded...)
		if len(failed) > 2*lay.chunksPerPart {
			// The blob store keeps refusing: say so rather than carry
			// more.
			return nil, known, failed, fmt.Errorf("the results of %d chunks could not be recorded, the last: %s", len(failed), failed[len(failed)-1].Error)
		}
		if part.Failure != nil {
			return part.Failure, known, failed, nil
		}
	}
	return nil, known, failed, nil
}

// progressEvery is how many chunks of 100 a part finishes between
// progress signals to its parent: 5 per part, 500 for a batch of a million
// URLs. Parts started before this version signal every 5 chunks; parts
// with chunks of 500 signal every layoutNow.progressEvery.
const (
	progressEvery       = 20
	progressEveryBefore = 5
)

// BatchFetchPart runs chunks [FirstChunk, EndChunk) of a staged batch.
func BatchFetchPart(ctx workflow.Context, in PartInput) (*PartOutput, error) {
	strict := strictOutcomes(ctx)
	lay := stagedLayout(in.ChunkSize)
	every := lay.progressEvery
	if !strict {
		every = progressEveryBefore
	}
	progress := &Progress{MaxInFlight: in.Settings.MaxInFlight}
	urls := min(in.EndChunk*lay.chunkSize, in.Count) - in.FirstChunk*lay.chunkSize
	e := newEngine(ctx, in.Settings, in.Prefix, lay.chunkSize, urls, lay.chunksInFlight, true, strict, progress)
	e.prevParts = in.PrevParts
	e.fetchQueue = in.FetchQueue
	chunksDone := 0
	parentID, parentRunID := in.ParentID, in.ParentRunID
	if parent := workflow.GetInfo(ctx).ParentWorkflowExecution; parent != nil {
		parentID, parentRunID = parent.ID, parent.RunID
	}
	// Parts since this version signal once a second at most, after any
	// chunk, so a batch of slow pages moves its progress too: at most one
	// signal per chunk.
	perSecond := workflow.GetVersion(ctx, "part-progress-each-second", workflow.DefaultVersion, 1) == 1
	var signaled time.Time
	e.onChunkDone = func() {
		chunksDone++
		due := chunksDone%every == 0
		if perSecond {
			due = workflow.Now(ctx).Sub(signaled) >= time.Second
		}
		if parentID != "" && due {
			signaled = workflow.Now(ctx)
			// Fire and forget: progress only.
			workflow.SignalExternalWorkflow(ctx, parentID, parentRunID, partProgressSignal, partProgress{Part: in.Part, Progress: *progress})
		}
	}
	e.run(ctx, stagedChunks(lay.chunkSize, in.FirstChunk, in.EndChunk, in.Count))
	if ctx.Err() != nil {
		return nil, temporal.NewCanceledError()
	}
	return &PartOutput{OK: progress.OK, Failed: progress.Failed, Failure: e.failure, Known: e.known, Unrecorded: e.unrecorded, Recent: progress.Recent, Hosts: progress.Hosts}, nil
}
