package client

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"

	"github.com/batchfetch/batchfetch/workflows"
)

// Attach returns the batch of workflow ID id (its latest run), running or
// ended. An ID that has no batch is an error wrapping the server's
// *serviceerror.NotFound.
func (c *Client) Attach(ctx context.Context, id string) (*Batch, error) {
	return c.AttachRun(ctx, id, "")
}

// AttachRun is Attach of one run of the batch, runID ("" its latest). A
// run ID the batch never had is an error wrapping *serviceerror.NotFound;
// one that is no run ID, *serviceerror.InvalidArgument. A workflow of
// that ID that is not a batch is a *serviceerror.NotFound too.
func (c *Client) AttachRun(ctx context.Context, id, runID string) (*Batch, error) {
	d, err := c.opts.Temporal.DescribeWorkflowExecution(ctx, id, runID)
	if err != nil {
		return nil, fmt.Errorf("attaching to batch %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	if name := info.GetType().GetName(); name != workflows.WorkflowName {
		return nil, fmt.Errorf("attaching to batch %s: %w", id, serviceerror.NewNotFound(fmt.Sprintf("workflow %s is a %s, not a %s", id, name, workflows.WorkflowName)))
	}
	return &Batch{c: c, run: c.opts.Temporal.GetWorkflow(ctx, id, info.GetExecution().GetRunId()), attached: true}, nil
}

// Input is the input the batch was started with, as its history holds it
// (a long URL list as the urls_file Start put it in), read with
// Options.DataConverter.
func (b *Batch) Input(ctx context.Context) (workflows.Input, error) {
	in, err := b.c.startedInput(ctx, b.ID(), b.RunID())
	if err != nil {
		return in, fmt.Errorf("the input of batch %s: %w", b.ID(), err)
	}
	return in, nil
}

// startedInput is the input a batch's run was started with.
func (c *Client) startedInput(ctx context.Context, id, runID string) (workflows.Input, error) {
	var in workflows.Input
	it := c.opts.Temporal.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return in, errors.New("its history is empty")
	}
	ev, err := it.Next()
	if err != nil {
		return in, err
	}
	started := ev.GetWorkflowExecutionStartedEventAttributes()
	if started == nil {
		return in, errors.New("its history does not begin with its start")
	}
	return in, c.opts.DataConverter.FromPayloads(started.GetInput(), &in)
}
