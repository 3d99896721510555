package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/workflows"
)

// command runs `starter status|cancel|results ID`.
func command(name string, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("starter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: starter %s [flags] WORKFLOW_ID\n\nflags:\n", name)
		fs.PrintDefaults()
	}
	runID := fs.String("run-id", "", "a run of the workflow other than the latest")
	waitStop := fs.Bool("wait", false, "cancel: wait until the batch has stopped")
	fs.BoolVar(&o.jsonOut, "json", false, "results: print JSON instead of a table")
	fs.StringVar(&o.outFile, "out", "", "results: also write them to this file as JSON lines")
	fs.StringVar(&o.blobDir, "blob-dir", filepath.Join(os.TempDir(), "batchfetch-blobs"), "the workers' blob store, where large results are (env BATCHFETCH_BLOB_DIR)")
	fs.StringVar(&o.blobURL, "blob-url", "", "the workers' object store instead of --blob-dir")
	fs.StringVar(&o.logLevel, "log-level", "off", "log of the Temporal client")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return err
	}
	if err := checkWritable(o.outFile); err != nil {
		return &exitError{exitUsage, err}
	}
	if len(positional) != 1 {
		return &exitError{exitUsage, fmt.Errorf("%s takes one WORKFLOW_ID, got %d arguments (starter %s --help)", name, len(positional), name)}
	}
	id := positional[0]
	ctx := context.Background()
	c, err := dial(ctx, o.logLevel)
	if err != nil {
		return err
	}
	defer c.Close()
	desc, err := c.DescribeWorkflowExecution(ctx, id, *runID)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return &exitError{exitUsage, fmt.Errorf("no batch with workflow ID %q (see the IDs in the Web UI, or `temporal workflow list`)", id)}
	}
	if err != nil {
		return &exitError{exitInternal, err}
	}
	info := desc.GetWorkflowExecutionInfo()
	run := c.GetWorkflow(ctx, id, info.GetExecution().GetRunId())
	running := info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING

	switch name {
	case "status":
		status := info.GetStatus().String()
		fmt.Fprintf(stdout, "workflow_id=%s run_id=%s status=%s\n", id, run.GetRunID(), status)
		if running {
			v, err := c.QueryWorkflow(ctx, id, run.GetRunID(), workflows.ProgressQuery)
			var p workflows.Progress
			if err == nil && v.Get(&p) == nil {
				fmt.Fprintln(stdout, progressLine(p, 0, 0))
			}
			return nil
		}
		// A finished batch: its counts, from its result.
		if out, ok := finishedOutput(ctx, run); ok {
			fmt.Fprintf(stdout, "%s of %d\n", summary(*out), out.Total)
		}
		return nil
	case "cancel":
		if !running {
			return &exitError{exitUsage, fmt.Errorf("batch %s is not running (%s)", id, info.GetStatus())}
		}
		if err := c.CancelWorkflow(ctx, id, run.GetRunID()); err != nil {
			return &exitError{exitInternal, err}
		}
		fmt.Fprintf(stdout, "cancel requested: workflow_id=%s run_id=%s\n", id, run.GetRunID())
		if *waitStop {
			err := run.Get(ctx, nil)
			var canceled *temporal.CanceledError
			if err != nil && !errors.As(err, &canceled) {
				return &exitError{exitFailed, err}
			}
			fmt.Fprintln(stdout, "stopped")
		}
		return nil
	default: // results
		if running {
			return &exitError{exitUsage, fmt.Errorf("batch %s is still running: `starter status %s` shows its progress", id, id)}
		}
		if o.store, err = openStore(ctx, o); err != nil {
			return &exitError{exitUsage, err}
		}
		return wait(ctx, c, run, &o, stdout, stderr)
	}
}

// dial connects to Temporal from the TEMPORAL_* environment.
func dial(ctx context.Context, logLevel string) (client.Client, error) {
	opts, err := cli.ClientOptions()
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	if opts.Logger, err = sdkLogger(logLevel); err != nil {
		return nil, &exitError{exitUsage, err}
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(dialCtx, opts)
	if err != nil {
		return nil, &exitError{exitInternal, fmt.Errorf("cannot reach Temporal at %s (namespace %q): %w\n(start a server, set TEMPORAL_ADDRESS, or try --dev)", opts.HostPort, opts.Namespace, err)}
	}
	return c, nil
}

// warnIfNoWorkers tells the user when nobody serves the batch's queues.
func warnIfNoWorkers(ctx context.Context, c client.Client, o *options, w io.Writer) {
	checks := []struct {
		queue string
		kind  enumspb.TaskQueueType
		role  string
	}{
		{o.taskQueue, enumspb.TASK_QUEUE_TYPE_WORKFLOW, "fetch"},
		{o.input.CPUTaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY, "cpu"},
	}
	for _, ch := range checks {
		if ch.queue == "" {
			continue
		}
		d, err := c.DescribeTaskQueue(ctx, ch.queue, ch.kind)
		if err == nil && len(d.GetPollers()) == 0 {
			fmt.Fprintf(w, "\nstarter: no worker is polling task queue %q: the batch waits until one does (start one: go run ./worker --role %s)\n", ch.queue, ch.role)
		}
	}
}

// finishedOutput is a closed batch's output, also when it failed or was
// canceled (their errors carry it).
func finishedOutput(ctx context.Context, run client.WorkflowRun) (*workflows.Output, bool) {
	var out workflows.Output
	err := run.Get(ctx, &out)
	if err == nil {
		return &out, true
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == workflows.ErrBatchFailed && appErr.HasDetails() && appErr.Details(&out) == nil {
		return &out, true
	}
	return workflows.CanceledOutput(err)
}
