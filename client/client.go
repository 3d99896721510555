package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/tracing"
	"github.com/batchfetch/batchfetch/workflows"
)

// Options configure a Client.
type Options struct {
	// Temporal is the connection to the Temporal server the workers
	// poll (required). The Client does not close it.
	Temporal sdkclient.Client
	// Store is the workers' blob store: long URL lists go in, results
	// files and kept bodies come out. Without it a batch of more than
	// workflows.InlineLimit URLs cannot be started, and results in a
	// file and kept bodies cannot be read.
	Store blobstore.Store
	// TaskQueue of the workflow and its fetches (default "batchfetch").
	TaskQueue string
	// CPUTaskQueue is the hash step's task queue for inputs that name
	// none (default: the input's default, "batchfetch-cpu").
	CPUTaskQueue string
	// DataConverter is the one Temporal was dialed with (default the
	// SDK's). Start reads a batch's input with it to tell whether a start
	// with an ID attached to another's batch.
	DataConverter converter.DataConverter
	// TracerProvider makes the span of each Start, "start batch" (default:
	// OpenTelemetry's global provider, which does nothing unless set).
	// Dial Temporal with the SDK's tracing interceptor
	// (go.temporal.io/sdk/contrib/opentelemetry) as well, and the batch's
	// workflow and activities are its children: one trace per batch.
	TracerProvider trace.TracerProvider
}

// Client starts batches and attaches to running ones.
type Client struct {
	opts Options
}

// New returns a Client on opts.Temporal.
func New(opts Options) (*Client, error) {
	if opts.Temporal == nil {
		return nil, errors.New("batchfetch client: Options.Temporal is required")
	}
	if opts.TaskQueue == "" {
		opts.TaskQueue = workflows.TaskQueue
	}
	if opts.DataConverter == nil {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = otel.GetTracerProvider()
	}
	return &Client{opts: opts}, nil
}

// StartOptions configure one batch.
type StartOptions struct {
	// ID is the batch's workflow ID (default a new one,
	// batchfetch-<time>-<random>). Starting an ID that has a batch, running
	// or ended, attaches to it instead: the same ID never fetches twice.
	ID string
	// Summary is shown in the Web UI (default "<n> URLs, <mode>").
	Summary string
	// Body, when set, is the request body of every URL, sent through the
	// blob store: for a body too large for the input (over
	// activities.MaxBodyText) or not UTF-8 text. It replaces the input's
	// Body, and the batch owns it (remove_inputs).
	Body io.Reader
	// Previous, when set, are an earlier batch's results (JSON lines, as a
	// results file holds them) to compare with: they go to the blob store
	// as the input's previous_file, which the batch owns.
	Previous io.Reader
}

// Start checks in and starts a batch of it. An input the workflow would
// refuse is an *InvalidInputError, and nothing starts. A URL list of more
// than workflows.InlineLimit URLs (or whose URLs' own request fields are
// large: ListInStore), opts.Body and opts.Previous go to the blob store as
// files the batch owns and removes when it ends. An ID that has a batch
// already is attached to (Batch.Attached), and what Start uploaded for it
// is removed.
func (c *Client) Start(ctx context.Context, in workflows.Input, opts StartOptions) (b *Batch, err error) {
	ctx, span := c.opts.TracerProvider.Tracer(tracerName).Start(ctx, "start batch", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.Int("batchfetch.urls", len(in.URLs))))
	defer func() { endStart(span, b, err) }()
	if opts.Body != nil {
		in.Body = &activities.BodyValue{Key: pendingBodyKey} // checked as a body in the blob store
	}
	if _, err := in.Validate(); err != nil {
		return nil, invalidInput(err.Error(), err)
	}
	if in.CPUTaskQueue == "" {
		in.CPUTaskQueue = c.opts.CPUTaskQueue
	}
	id := opts.ID
	if id == "" {
		id = newID()
	}
	summary := opts.Summary
	if summary == "" {
		summary = fmt.Sprintf("%d URLs, %s", len(in.URLs), modeOf(in))
		if in.URLsFile != "" {
			summary = "urls_file " + in.URLsFile + ", " + modeOf(in)
		}
	}
	up, err := c.uploadInputs(ctx, &in, id, opts)
	if err != nil {
		return nil, err
	}
	// Once the files are up the start is made whole: a canceled ctx must
	// not leave them with no batch.
	startCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	run, err := c.opts.Temporal.ExecuteWorkflow(startCtx, sdkclient.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                c.opts.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// An ID that has a run, running or ended, is an error: the
		// SDK would otherwise hand back that run as if this start made
		// it (and whatever workflow it is).
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            summary,
	}, workflows.WorkflowName, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &already):
		up.drop(c.opts.Store) // the batch of this ID reads its own files, not these
		return c.AttachRun(ctx, id, already.RunId)
	case err != nil:
		if startRefused(err) {
			up.drop(c.opts.Store)
		}
		return nil, fmt.Errorf("starting batch %s: %w", id, err)
	}
	return &Batch{c: c, run: run, inputs: up}, nil
}

// tracerName is the instrumentation scope of the client's spans.
const tracerName = "github.com/batchfetch/batchfetch/client"

// endStart ends Start's span: the batch's IDs, or the error.
func endStart(span trace.Span, b *Batch, err error) {
	if err != nil {
		span.SetStatus(codes.Error, tracing.Scrub(err.Error()))
	}
	if b != nil {
		span.SetAttributes(attribute.String("temporalWorkflowID", b.ID()), attribute.String("temporalRunID", b.RunID()))
	}
	span.End()
}

// startRefused tells whether a start failed for sure, so that no batch
// was started (and none will remove the uploaded files).
func startRefused(err error) bool {
	var bad *serviceerror.InvalidArgument
	var denied *serviceerror.PermissionDenied
	var ns *serviceerror.NamespaceNotFound
	return errors.As(err, &bad) || errors.As(err, &denied) || errors.As(err, &ns)
}

func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "batchfetch-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func modeOf(in workflows.Input) string {
	if in.Mode == "" {
		return workflows.ModeCollect
	}
	return in.Mode
}
