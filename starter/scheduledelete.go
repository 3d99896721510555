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
	store, err := openListStore(ctx, so, id, list, "nothing was deleted")
	if err != nil {
		return err
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
	if list != "" {
		releaseList(ctx, c, store, "its URL list", list, d.Info.RunningWorkflows, stdout, stderr)
	}
	return nil
}

// openListStore opens the store that holds a schedule's URL list (none
// when list is ""), and refuses one that does not hold it: once the
// schedule no longer names the list, nothing else does. unchanged says
// what the refusal leaves as it was.
func openListStore(ctx context.Context, so options, id, list, unchanged string) (blobstore.Store, error) {
	if list == "" {
		return nil, nil
	}
	store, err := openStore(ctx, so)
	if err == nil {
		var r io.ReadCloser
		if r, err = store.Open(ctx, list); err == nil {
			r.Close()
		}
	}
	if err != nil {
		return nil, &exitError{exitUsage, fmt.Errorf("schedule %s: its URL list %s is not in %s (%v): give the --blob-dir or --blob-url it was created with; %s", id, list, so.storeLocation(), err, unchanged)}
	}
	return store, nil
}

// releaseList removes a URL list the schedule no longer names, but never
// from under a run that may still read it: the first of the running runs
// that takes the signal is handed it and removes it when it ends. what
// names the list in what it says ("its URL list").
func releaseList(ctx context.Context, c client.Client, store blobstore.Store, what, list string, running []client.ScheduleWorkflowExecution, stdout, stderr io.Writer) {
	for _, run := range running {
		err := c.SignalWorkflow(ctx, run.WorkflowID, "", workflows.AdoptInputsSignal, []string{list})
		var gone *serviceerror.NotFound
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "%s %s stays until run %s ends, which removes it\n", what, list, run.WorkflowID)
			return
		case !errors.As(err, &gone):
			fmt.Fprintf(stderr, "%s %s stays in the blob store: run %s may still read it, and could not be handed it: %v\n", what, list, run.WorkflowID, err)
			return
		}
		// That run has ended meanwhile: it reads the list no more.
	}
	if err := store.DeletePrefix(ctx, list); err != nil {
		fmt.Fprintf(stderr, "%s %s stays in the blob store: %v\n", what, list, err)
	}
}
