package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// scheduleDelete runs `starter schedule delete ID`. The URL list create
// put in the blob store goes with the schedule, but never from under a
// run that may still read it: a run still going is handed the list
// (workflows.AdoptInputsSignal) and removes it when it ends.
func scheduleDelete(ctx context.Context, c client.Client, h client.ScheduleHandle, so options, stdout, stderr io.Writer) error {
	id := h.GetID()
	// Read (and decode) it first: a schedule that cannot be read is left
	// as it was, running.
	before, err := h.Describe(ctx)
	if err != nil {
		return scheduleError(id, err)
	}
	list := scheduleList(before)
	var store blobstore.Store
	if list != "" {
		// The list is removed from the store create put it in, or the
		// schedule stays: once it is gone, nothing names the list.
		if store, err = openStore(ctx, so); err == nil {
			var r io.ReadCloser
			if r, err = store.Open(ctx, list); err == nil {
				r.Close()
			}
		}
		if err != nil {
			return &exitError{exitUsage, fmt.Errorf("schedule %s: its URL list %s is not in %s (%v): give the --blob-dir or --blob-url it was created with; nothing was deleted", id, list, so.storeLocation(), err)}
		}
	}
	// Paused, so that no run starts between the look at the running ones
	// and the delete.
	if err := h.Pause(ctx, client.SchedulePauseOptions{Note: "being deleted with starter schedule delete"}); err != nil {
		return scheduleError(id, err)
	}
	d, err := h.Describe(ctx)
	if err == nil {
		err = h.Delete(ctx)
	}
	if err != nil {
		if !before.Schedule.State.Paused {
			_ = h.Unpause(context.WithoutCancel(ctx), client.ScheduleUnpauseOptions{Note: "starter schedule delete failed"})
		}
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
	if err := store.DeletePrefix(ctx, list); err != nil {
		fmt.Fprintf(stderr, "its URL list %s stays in the blob store: %v\n", list, err)
	}
	return nil
}
