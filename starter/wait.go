package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/workflows"
)

// wait waits for the batch, showing its progress (unless --quiet), and
// prints what it ended with.
func wait(ctx context.Context, tc sdkclient.Client, b *bfclient.Batch, o *options, stdout, stderr io.Writer) error {
	done := make(chan struct{})
	progressDone := make(chan struct{})
	scr := newScreen(stderr)
	slots := &slotWarning{w: scr}
	reach := &reachability{addr: o.address}
	bar := &barState{}
	go func() {
		defer close(progressDone)
		if !o.quiet {
			watchBatch(ctx, b, o, done, scr, slots, reach, bar)
		}
	}()
	warned := make(chan struct{})
	go func() {
		defer close(warned)
		told := o.quiet || checkSlots(ctx, tc, o, slots)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			if !o.quiet {
				warnIfNoWorkers(ctx, tc, o, scr)
			}
			if !told {
				checkSlots(ctx, tc, o, slots)
			}
		}
	}()
	out, err := awaitResult(ctx, b, reach)
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
				o.devDB, o.devDB, o.devPortFlags(), b.ID(), b.RunID())}
		}
		return &exitError{exitInterrupted, fmt.Errorf("stopped waiting; the batch goes on: workflow_id=%s run_id=%s", b.ID(), b.RunID())}
	}
	return o.reportEnd(ctx, b, out, err, stdout)
}

// reportEnd prints what the batch ended with, out or err (Wait's), and
// returns the exit status that goes with it.
func (o *options) reportEnd(ctx context.Context, b *bfclient.Batch, out workflows.Output, err error, stdout io.Writer) error {
	var invalid *bfclient.InvalidInputError
	var failed *bfclient.BatchFailedError
	var canceled *bfclient.CanceledError
	switch {
	case err == nil:
	case errors.As(err, &invalid):
		return o.refused(ctx, b, invalid)
	case errors.As(err, &failed):
		return o.failed(ctx, b, failed, stdout)
	case errors.As(err, &canceled):
		if canceled.Output != nil {
			if perr := printOutput(ctx, stdout, *canceled.Output, *o); perr != nil {
				return perr
			}
		}
		return &exitError{exitFailed, fmt.Errorf("batch canceled (workflow_id=%s)", b.ID())}
	default:
		return &exitError{exitFailed, fmt.Errorf("batch %s: %s", b.ID(), plainFailure(err))}
	}
	if err := printOutput(ctx, stdout, out, *o); err != nil {
		return err
	}
	if out.Failed > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d of %d URLs failed", out.Failed, out.Total)}
	}
	return nil
}

// refused says that the workflow refused the batch's input: a usage
// error, or, when the input is a file this starter put in its store and
// the workers do not see it, a store error.
func (o *options) refused(ctx context.Context, b *bfclient.Batch, invalid *bfclient.InvalidInputError) error {
	msg := "invalid input: " + plainText(invalid.Message)
	elsewhere := false // an input this starter put in its store, which the workers do not see
	for _, key := range b.InputFiles() {
		if strings.Contains(msg, key) && strings.Contains(msg, "is not in the blob store") {
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
}

// failed prints what a failed batch had done, if its failure carries
// it, and says why it failed.
func (o *options) failed(ctx context.Context, b *bfclient.Batch, failed *bfclient.BatchFailedError, stdout io.Writer) error {
	var appErr *temporal.ApplicationError
	if !errors.As(failed.Err, &appErr) || appErr.Type() != workflows.BatchFailedType {
		// Terminated, timed out, or an error of its own.
		return &exitError{exitFailed, fmt.Errorf("batch %s: %s", b.ID(), plainFailure(failed.Err))}
	}
	if failed.Output != nil {
		if err := printOutput(ctx, stdout, *failed.Output, *o); err != nil {
			return err
		}
	}
	return &exitError{exitFailed, fmt.Errorf("batch failed: %s", plainText(appErr.Message()))}
}

// awaitResult waits for the batch's output. A server that does not answer
// is waited for: the batch is durable.
func awaitResult(ctx context.Context, b *bfclient.Batch, reach *reachability) (workflows.Output, error) {
	for {
		began := time.Now()
		out, err := b.Wait(ctx)
		if err == nil || ctx.Err() != nil || ended(err) || !unreachable(err) {
			return out, err
		}
		reach.answered(began, err)
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}

// ended tells whether err is what a batch ended with, not a failure to
// learn how it ended.
func ended(err error) bool {
	var invalid *bfclient.InvalidInputError
	var failed *bfclient.BatchFailedError
	var canceled *bfclient.CanceledError
	return errors.As(err, &invalid) || errors.As(err, &failed) || errors.As(err, &canceled)
}

// warnIfNoWorkers tells the user when nobody serves the batch's queues.
func warnIfNoWorkers(ctx context.Context, c sdkclient.Client, o *options, w io.Writer) {
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
