package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/cli"
)

// batchCommand is what status, cancel and results share: one WORKFLOW_ID,
// --run-id and --log-level, and the lookup of the batch.
type batchCommand struct {
	name   string
	fs     *flag.FlagSet
	runID  string
	o      options
	stderr io.Writer
}

func newBatchCommand(name, usage string, stderr io.Writer) *batchCommand {
	b := &batchCommand{name: name, stderr: stderr}
	b.fs = flag.NewFlagSet("starter "+name, flag.ContinueOnError)
	b.fs.SetOutput(stderr)
	b.fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: starter %s [flags] WORKFLOW_ID\n\n%s\n\nflags:\n", name, usage)
		b.fs.PrintDefaults()
	}
	b.fs.StringVar(&b.runID, "run-id", "", "a run of the workflow other than the latest")
	b.fs.StringVar(&b.o.logLevel, "log-level", "off", "log of the Temporal client")
	return b
}

// storeFlags adds the flags that say where the workers' blob store is.
func (o *options) storeFlags(fs *flag.FlagSet, what string) {
	fs.StringVar(&o.blobDir, "blob-dir", blobstore.DefaultDir(), "the workers' blob store: "+what+" (env BATCHFETCH_BLOB_DIR)")
	fs.StringVar(&o.blobURL, "blob-url", "", "the workers' object store instead of --blob-dir (s3://bucket?region=..., gs://bucket, azblob://container)")
}

// batch is one batch found by its workflow ID.
type batch struct {
	c       client.Client
	id      string
	run     client.WorkflowRun
	status  enumspb.WorkflowExecutionStatus
	running bool
}

// run parses args, connects, finds the batch and hands it to do.
func (b *batchCommand) run(args []string, do func(ctx context.Context, bt *batch) error) error {
	ctx := context.Background()
	bt, done, err := b.open(ctx, args)
	if done || err != nil {
		return err
	}
	defer bt.c.Close()
	return do(ctx, bt)
}

// open parses args, connects and finds the batch. done is true after
// --help. The caller closes bt.c.
func (b *batchCommand) open(ctx context.Context, args []string) (bt *batch, done bool, err error) {
	positional, done, err := parseFlags(b.fs, args)
	if done || err != nil {
		return nil, done, err
	}
	if err := checkWritable(b.o.outFile); err != nil {
		return nil, false, &exitError{exitUsage, err}
	}
	if len(positional) != 1 {
		return nil, false, &exitError{exitUsage, fmt.Errorf("%s takes one WORKFLOW_ID, got %d arguments (starter %s --help)", b.name, len(positional), b.name)}
	}
	id := positional[0]
	c, err := dial(ctx, b.o.logLevel)
	if err != nil {
		return nil, false, err
	}
	if id == "" {
		c.Close()
		return nil, false, &exitError{exitUsage, fmt.Errorf("%s: the WORKFLOW_ID is empty", b.name)}
	}
	desc, err := c.DescribeWorkflowExecution(ctx, id, b.runID)
	if err != nil {
		c.Close()
		return nil, false, b.lookupError(id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	return &batch{c: c, id: id, run: c.GetWorkflow(ctx, id, info.GetExecution().GetRunId()), status: info.GetStatus(),
		running: info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}, false, nil
}

// lookupError says why the batch could not be found, with the exit status
// that goes with it.
func (b *batchCommand) lookupError(id string, err error) error {
	var notFound *serviceerror.NotFound
	var badArg *serviceerror.InvalidArgument
	var nsErr *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &notFound) && b.runID != "":
		return &exitError{exitNotFound, fmt.Errorf("no run %q of a batch with workflow ID %q (without --run-id: its latest run)", b.runID, id)}
	case errors.As(err, &notFound):
		return &exitError{exitNotFound, fmt.Errorf("no batch with workflow ID %q (see the IDs in the Web UI, or `temporal workflow list`)", id)}
	case errors.As(err, &badArg) && b.runID != "":
		return &exitError{exitUsage, fmt.Errorf("--run-id %q: %s", b.runID, badArg.Message)}
	case errors.As(err, &badArg):
		return &exitError{exitUsage, fmt.Errorf("workflow ID %q: %s", id, badArg.Message)}
	case errors.As(err, &nsErr):
		return &exitError{exitInternal, fmt.Errorf("namespace not found: %v (create it, or set TEMPORAL_NAMESPACE)", err)}
	default:
		return &exitError{exitInternal, err}
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

// temporalAddress is the Temporal server's address, as dial reads it.
func temporalAddress() string {
	opts, err := cli.ClientOptions()
	if err != nil {
		return "?"
	}
	return opts.HostPort
}

// storeLocation says where the starter's blob store is.
func (o options) storeLocation() string {
	if o.blobURL != "" {
		return blobstore.Redacted(o.blobURL)
	}
	return o.blobDir
}

// openStore opens the blob store the options name.
func openStore(ctx context.Context, o options) (blobstore.Store, error) {
	if o.blobURL != "" {
		return blobstore.Open(ctx, o.blobURL)
	}
	return blobstore.NewDir(o.blobDir)
}
