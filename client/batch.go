package client

import (
	"context"
	"fmt"

	sdkclient "go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// Batch is one batch: a BatchFetch workflow run.
type Batch struct {
	c   *Client
	run sdkclient.WorkflowRun
}

// ID is the batch's workflow ID.
func (b *Batch) ID() string { return b.run.GetID() }

// RunID is the ID of the batch's run.
func (b *Batch) RunID() string { return b.run.GetRunID() }

// Progress is what the batch's progress query says: counts of its URLs
// done, ok, failed and in flight, its fetch slots and latest failures.
// It answers also once the batch has ended (its final counts).
func (b *Batch) Progress(ctx context.Context) (workflows.Progress, error) {
	var p workflows.Progress
	v, err := b.c.opts.Temporal.QueryWorkflow(ctx, b.ID(), b.RunID(), workflows.ProgressQuery)
	if err != nil {
		return p, fmt.Errorf("progress of batch %s: %w", b.ID(), err)
	}
	if err := v.Get(&p); err != nil {
		return p, fmt.Errorf("progress of batch %s: %w", b.ID(), err)
	}
	return p, nil
}

// Wait waits until the batch ends and returns its output. A batch that
// did not complete is one of: *InvalidInputError (its input was
// refused), *BatchFailedError (a fail_fast batch stopped, with its
// partial output, or it failed otherwise), *CanceledError (with its
// output so far). Any other error (ctx ended, the server could not be
// reached) leaves the batch as it is: Wait again.
//
// The results of a completed batch are in Output.Results, or, when
// Output.ResultsFile is set, in the blob store: Results reads either.
func (b *Batch) Wait(ctx context.Context) (workflows.Output, error) {
	var out workflows.Output
	err := b.run.Get(ctx, &out)
	return out, batchError(err)
}

// Cancel asks the running batch to stop: fetches in flight stop, finished
// URLs keep their results. Wait then returns a *CanceledError once it
// has stopped.
func (b *Batch) Cancel(ctx context.Context) error {
	if err := b.c.opts.Temporal.CancelWorkflow(ctx, b.ID(), b.RunID()); err != nil {
		return fmt.Errorf("canceling batch %s: %w", b.ID(), err)
	}
	return nil
}
