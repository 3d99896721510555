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
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
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

// batch is one batch found by its workflow ID, on the Temporal
// connection tc (closed by the caller).
type batch struct {
	*bfclient.Batch
	tc      sdkclient.Client
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
	defer bt.tc.Close()
	return do(ctx, bt)
}

// open parses args, connects and finds the batch. done is true after
// --help. The caller closes bt.tc.
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
	tc, err := dial(ctx, b.o.logLevel)
	if err != nil {
		return nil, false, err
	}
	if id == "" {
		tc.Close()
		return nil, false, &exitError{exitUsage, fmt.Errorf("%s: the WORKFLOW_ID is empty", b.name)}
	}
	found, err := newBatches(tc, nil, "", nil).AttachRun(ctx, id, b.runID)
	var desc *workflowservice.DescribeWorkflowExecutionResponse
	if err == nil {
		desc, err = found.Describe(ctx)
	}
	if err != nil {
		tc.Close()
		return nil, false, b.lookupError(id, err)
	}
	status := desc.GetWorkflowExecutionInfo().GetStatus()
	return &batch{Batch: found, tc: tc, status: status, running: status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}, false, nil
}

// withStore opens the blob store o names and reads through it
// (o.batches): the results and kept bodies of the batch.
func (bt *batch) withStore(ctx context.Context, o *options) error {
	var err error
	if o.store, err = openStore(ctx, *o); err != nil {
		return &exitError{exitUsage, err}
	}
	o.batches = newBatches(bt.tc, o.store, "", nil)
	return nil
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
		return &exitError{exitInternal, namespaceError(nsErr)}
	default:
		return &exitError{exitInternal, err}
	}
}

// dial connects to Temporal from the TEMPORAL_* environment, with the
// interceptors given (tracing).
func dial(ctx context.Context, logLevel string, interceptors ...interceptor.ClientInterceptor) (sdkclient.Client, error) {
	opts, err := cli.ClientOptions()
	if err != nil {
		return nil, &exitError{exitUsage, err}
	}
	opts.Interceptors = append(opts.Interceptors, interceptors...)
	if opts.Logger, err = sdkLogger(logLevel); err != nil {
		return nil, &exitError{exitUsage, err}
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := sdkclient.DialContext(dialCtx, opts)
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

// payloadConverter is the data converter this starter's client uses: the
// default, or the encrypting one of BATCHFETCH_CODEC_KEYS.
func payloadConverter() converter.DataConverter {
	if opts, err := cli.ClientOptions(); err == nil && opts.DataConverter != nil {
		return opts.DataConverter
	}
	return converter.GetDefaultDataConverter()
}
