package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/workflows"
)

// Batch is one batch: a BatchFetch workflow run.
type Batch struct {
	c   *Client
	run sdkclient.WorkflowRun
	// attached: the batch was there before (Attach, or Start on an ID
	// that had one).
	attached bool
	// inputs are the files Start uploaded for the batch, removed once
	// by Wait when the batch has ended.
	inputs  uploads
	dropped sync.Once
}

// ID is the batch's workflow ID.
func (b *Batch) ID() string { return b.run.GetID() }

// RunID is the ID of the batch's run.
func (b *Batch) RunID() string { return b.run.GetRunID() }

// Attached tells whether the batch was there before: found by Attach, or
// by Start on an ID that had a batch (running or ended), which Start
// attached to rather than start another.
func (b *Batch) Attached() bool { return b.attached }

// InputFiles are the blob store keys of the input files Start put in the
// store for the batch (a long URL list, StartOptions.Body and Previous),
// which the batch owns and removes when it ends. None when it attached.
func (b *Batch) InputFiles() []string { return b.inputs.keys() }

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

// Describe is the server's record of the batch's run: its status, its
// pending activities (their attempts, last failures and heartbeats) and
// its pending child workflows, the parts a large batch runs its URLs in.
// It asks no worker.
func (b *Batch) Describe(ctx context.Context) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	d, err := b.c.opts.Temporal.DescribeWorkflowExecution(ctx, b.ID(), b.RunID())
	if err != nil {
		return nil, fmt.Errorf("describing batch %s: %w", b.ID(), err)
	}
	return d, nil
}

// DescribePart is Describe of one of the batch's parts, a pending child
// workflow that Describe lists.
func (b *Batch) DescribePart(ctx context.Context, part *workflowpb.PendingChildExecutionInfo) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	d, err := b.c.opts.Temporal.DescribeWorkflowExecution(ctx, part.GetWorkflowId(), part.GetRunId())
	if err != nil {
		return nil, fmt.Errorf("describing part %s of batch %s: %w", part.GetWorkflowId(), b.ID(), err)
	}
	return d, nil
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
// Once the batch has ended, its InputFiles are removed (a batch removes
// them itself, but one terminated cannot).
func (b *Batch) Wait(ctx context.Context) (workflows.Output, error) {
	var out workflows.Output
	err := b.run.Get(ctx, &out)
	var ended *temporal.WorkflowExecutionError
	if err == nil || errors.As(err, &ended) {
		b.dropped.Do(func() { b.inputs.drop(b.c.opts.Store) })
	}
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
