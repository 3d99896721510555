package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/workflows"
)

func wait(ctx context.Context, c client.Client, run client.WorkflowRun, o *options, stdout, stderr io.Writer) error {
	done := make(chan struct{})
	progressDone := make(chan struct{})
	scr := newScreen(stderr)
	slots := &slotWarning{w: scr}
	reach := &reachability{addr: o.address}
	bar := &barState{}
	go func() {
		defer close(progressDone)
		if !o.quiet {
			watchBatch(ctx, c, run, o, done, scr, slots, reach, bar)
		}
	}()
	warned := make(chan struct{})
	go func() {
		defer close(warned)
		told := o.quiet || checkSlots(ctx, c, o, slots)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			if !o.quiet {
				warnIfNoWorkers(ctx, c, o, scr)
			}
			if !told {
				checkSlots(ctx, c, o, slots)
			}
		}
	}()
	var out workflows.Output
	err := awaitResult(ctx, run, &out, reach)
	if err == nil {
		bar.finish(out)
	}
	close(done)
	<-progressDone
	<-warned

	if ctx.Err() != nil {
		if o.dev {
			// The server and the workers were in this process.
			return &exitError{exitInterrupted, fmt.Errorf("stopped: the batch waits in %s, with the dev server, until `starter --dev --serve --dev-db %s%s` runs again (workflow_id=%s run_id=%s)",
				o.devDB, o.devDB, o.devPortFlags(), run.GetID(), run.GetRunID())}
		}
		return &exitError{exitInterrupted, fmt.Errorf("stopped waiting; the batch goes on: workflow_id=%s run_id=%s", run.GetID(), run.GetRunID())}
	}
	var appErr *temporal.ApplicationError
	var canceled *temporal.CanceledError
	switch {
	case err == nil:
	case errors.As(err, &appErr) && appErr.Type() == workflows.InvalidInputType:
		msg := "invalid input: " + plainText(appErr.Message())
		elsewhere := false // an input this starter put in its store, which the workers do not see
		for _, key := range []string{o.uploaded, o.uploadedPrevious, o.uploadedBody} {
			if key != "" && strings.Contains(msg, key) && strings.Contains(msg, "is not in the blob store") {
				elsewhere = true
			}
		}
		if elsewhere {
			id, _ := blobstore.ID(ctx, o.store)
			msg += fmt.Sprintf(" (this starter wrote it to %s, identity %s); nothing was fetched", o.storeLocation(), id)
		}
		switch {
		case o.finished:
			return &exitError{exitFailed, errors.New("the batch refused its " + msg)} // results of a finished batch
		case elsewhere:
			return &exitError{exitStore, errors.New(msg)}
		}
		return &exitError{exitUsage, errors.New(msg)}
	case errors.As(err, &appErr) && appErr.Type() == workflows.BatchFailedType:
		if appErr.HasDetails() && appErr.Details(&out) == nil {
			if perr := printOutput(ctx, stdout, out, *o); perr != nil {
				return perr
			}
		}
		return &exitError{exitFailed, fmt.Errorf("batch failed: %s", plainText(appErr.Message()))}
	case errors.As(err, &canceled):
		if partial, ok := workflows.CanceledOutput(err); ok {
			if perr := printOutput(ctx, stdout, *partial, *o); perr != nil {
				return perr
			}
		}
		return &exitError{exitFailed, fmt.Errorf("batch canceled (workflow_id=%s)", run.GetID())}
	default:
		return &exitError{exitFailed, fmt.Errorf("batch %s: %s", run.GetID(), plainFailure(err))}
	}
	if err := printOutput(ctx, stdout, out, *o); err != nil {
		return err
	}
	if out.Failed > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d of %d URLs failed", out.Failed, out.Total)}
	}
	return nil
}

// awaitResult waits for run's result. A server that does not answer is
// waited for: the batch is durable.
func awaitResult(ctx context.Context, run client.WorkflowRun, out *workflows.Output, reach *reachability) error {
	for {
		began := time.Now()
		err := run.Get(ctx, out)
		var ended *temporal.WorkflowExecutionError
		if err == nil || ctx.Err() != nil || errors.As(err, &ended) || !unreachable(err) {
			return err
		}
		reach.answered(began, err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// warnIfNoWorkers tells the user when nobody serves the batch's queues.
func warnIfNoWorkers(ctx context.Context, c client.Client, o *options, w io.Writer) {
	// The command that starts a worker for the queue: its role, its
	// queue when not the default, and this starter's blob store (the
	// worker must share it).
	store := " --blob-dir " + cli.ShellQuote(o.blobDir)
	if o.blobURL != "" {
		store = " --blob-url " + cli.ShellQuote(blobstore.Redacted(o.blobURL))
	}
	checks := []struct {
		queue string
		kind  enumspb.TaskQueueType
		cmd   string
	}{
		{o.taskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW, "--role fetch" + queueFlag("--task-queue", o.taskQueue, workflows.TaskQueue) + store},
		{o.input.CPUTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY, "--role cpu" + queueFlag("--cpu-task-queue", o.input.CPUTaskQueue, workflows.CPUTaskQueue) + store},
	}
	for _, ch := range checks {
		if ch.queue == "" {
			continue
		}
		d, err := c.DescribeTaskQueue(ctx, ch.queue, ch.kind)
		if err == nil && len(d.GetPollers()) == 0 {
			fmt.Fprintf(w, "\nstarter: no worker is polling task queue %q: the batch waits until one does (start one: go run ./worker %s)\n", ch.queue, ch.cmd)
		}
	}
}

// queueFlag is flag and queue for a worker's command line, unless queue is
// the default.
func queueFlag(flag, queue, def string) string {
	if queue == def {
		return ""
	}
	return " " + flag + " " + queue
}
