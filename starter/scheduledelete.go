package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// scheduleDelete runs `starter schedule delete ID`. The URL list create
// put in the blob store goes with the schedule, but never from under a
// run that may still read it: a run still going is handed the list
// (workflows.AdoptInputsSignal) and removes it when it ends.
func scheduleDelete(ctx context.Context, c client.Client, h client.ScheduleHandle, so options, stdout, stderr io.Writer) error {
	id := h.GetID()
	// Paused first, so that no run starts between the look at the
	// running ones and the delete.
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "being deleted with starter schedule delete"}); err != nil {
		return scheduleError(id, err)
	}
	d, err := h.Describe(ctx)
	if err != nil {
		return scheduleError(id, err)
	}
	list := scheduleList(d)
	if err := h.Delete(ctx); err != nil {
		return scheduleError(id, err)
	}
	fmt.Fprintf(stdout, "schedule %s deleted (its runs and their results stay)\n", id)
	if list == "" {
		return nil
	}
	for _, run := range d.Info.RunningWorkflows {
		err := c.SignalWorkflow(ctx, run.WorkflowID, "", workflows.AdoptInputsSignal, []string{list})
		var gone *serviceerror.NotFound
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "its URL list %s stays until run %s ends, which removes it\n", list, run.WorkflowID)
			return nil
		case !errors.As(err, &gone):
			fmt.Fprintf(stderr, "its URL list %s stays in the blob store: run %s may still read it, and could not be handed it: %v\n", list, run.WorkflowID, err)
			return nil
		}
		// That run has ended meanwhile: it reads the list no more.
	}
	store, err := openStore(ctx, so)
	if err == nil {
		err = store.DeletePrefix(ctx, list)
	}
	if err != nil {
		fmt.Fprintf(stderr, "its URL list %s stays in the blob store: %v\n", list, err)
	}
	return nil
}
