package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// newBatches is the client package's Client on the Temporal connection tc
// and the blob store (nil: none): what the starter does with a batch, it
// does through it. tp makes the spans of its starts (nil: none).
func newBatches(tc sdkclient.Client, store blobstore.Store, taskQueue string, tp trace.TracerProvider) *bfclient.Client {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	c, err := bfclient.New(bfclient.Options{Temporal: tc, Store: store, TaskQueue: taskQueue, DataConverter: payloadConverter(), TracerProvider: tp})
	if err != nil {
		panic(err) // only without a connection, which every caller has
	}
	return c
}

// startBatch starts o's batch, or attaches to the batch its --id has
// already: the same ID never fetches twice.
func startBatch(ctx context.Context, tc sdkclient.Client, o *options, stderr io.Writer) (*bfclient.Batch, error) {
	if o.id != "" {
		if b, err := o.batches.Attach(ctx, o.id); err == nil {
			sayAttached(ctx, b, o.input, stderr)
			return b, nil
		}
	}
	if !o.dev || !o.devWorkers { // the built-in workers use the stack's store
		if err := checkStore(ctx, tc, o); err != nil {
			return nil, err
		}
	}
	opts, previous, err := o.startOptions()
	if err != nil {
		return nil, err
	}
	if previous != nil {
		defer previous.f.Close()
	}
	b, err := o.batches.Start(ctx, o.input, opts)
	if err != nil {
		return nil, startError(err, previous)
	}
	if b.Attached() {
		// Another starter started this ID a moment before: the server
		// returned that batch, which reads its own files.
		fmt.Fprintf(stderr, "attached to the batch workflow_id=%s another starter started a moment before, with its own inputs: the same ID never fetches twice\n", b.ID())
	}
	return b, nil
}

// sayAttached says that the starter attached to an existing batch, and
// whether its URLs or settings differ from in's.
func sayAttached(ctx context.Context, b *bfclient.Batch, in workflows.Input, stderr io.Writer) {
	d, _ := b.Describe(ctx)
	fmt.Fprintf(stderr, "attached to the existing batch workflow_id=%s run_id=%s (%s): the same ID never fetches twice\n",
		b.ID(), b.RunID(), d.GetWorkflowExecutionInfo().GetStatus())
	theirs, err := b.Input(ctx)
	if err != nil {
		return
	}
	if theirs.URLsFile == "" && !slices.Equal(theirs.URLs, in.URLs) {
		fmt.Fprintf(stderr, "note: its URLs are not these (%d URLs there, %d here); use another --id for a new batch\n", len(theirs.URLs), len(in.URLs))
	}
	if diff := settingsDiffer(theirs, in); diff != "" {
		fmt.Fprintf(stderr, "note: it runs with other settings (%s); use another --id for a new batch\n", diff)
	}
}

// startOptions are the client's options for o's batch: its --id, and its
// --data body and --previous file, which go through the blob store.
// previous is the --previous file, open: the caller closes it.
func (o *options) startOptions() (opts bfclient.StartOptions, previous *localFile, err error) {
	opts.ID = o.id
	if o.req.body != nil {
		opts.Body = bytes.NewReader(o.req.body)
	}
	if o.previous == "" {
		return opts, nil, nil
	}
	f, err := os.Open(o.previous)
	if err != nil {
		return opts, nil, &exitError{exitUsage, fmt.Errorf("--previous: %w", err)}
	}
	previous = &localFile{f: f}
	opts.Previous = previous
	return opts, previous, nil
}

// startError says why a batch did not start, with the exit status that
// goes with it.
func startError(err error, previous *localFile) error {
	var invalid *bfclient.InvalidInputError
	var nsErr *serviceerror.NamespaceNotFound
	switch {
	case previous != nil && previous.err != nil:
		return &exitError{exitUsage, fmt.Errorf("--previous: %w", previous.err)}
	case errors.As(err, &invalid):
		return &exitError{exitUsage, err}
	case errors.As(err, &nsErr):
		return &exitError{exitInternal, namespaceError(nsErr)}
	}
	return &exitError{exitInternal, err}
}

// namespaceError says that the TEMPORAL_NAMESPACE does not exist.
func namespaceError(err *serviceerror.NamespaceNotFound) error {
	return fmt.Errorf("namespace not found: %v (create it, or set TEMPORAL_NAMESPACE)", err)
}

// localFile is a local file read for an upload. It keeps its read error:
// a file that cannot be read is the user's to fix, not the store's.
type localFile struct {
	f   *os.File
	err error
}

func (l *localFile) Read(p []byte) (int, error) {
	n, err := l.f.Read(p)
	if err != nil && err != io.EOF {
		l.err = err
	}
	return n, err
}

// settingsDiffer names the settings (but the URLs) in which two inputs
// differ, once their defaults are applied.
func settingsDiffer(theirs, mine workflows.Input) string {
	theirs.URLs, theirs.URLsFile, mine.URLs, mine.URLsFile = []string{"http://x/"}, "", []string{"http://x/"}, ""
	a, errA := theirs.Validate()
	b, errB := mine.Validate()
	if errA != nil || errB != nil {
		return ""
	}
	var diff []string
	add := func(name string, differ bool, there, here any) {
		if differ {
			diff = append(diff, fmt.Sprintf("%s %v there, %v here", name, there, here))
		}
	}
	add("mode", a.FailFast != b.FailFast, modeName(a.FailFast), modeName(b.FailFast))
	add("max_in_flight", a.MaxInFlight != b.MaxInFlight, a.MaxInFlight, b.MaxInFlight)
	add("attempt_timeout", a.AttemptTimeout != b.AttemptTimeout, a.AttemptTimeout, b.AttemptTimeout)
	add("url_timeout", a.URLTimeout != b.URLTimeout, a.URLTimeout, b.URLTimeout)
	add("max_attempts", a.MaxAttempts != b.MaxAttempts, a.MaxAttempts, b.MaxAttempts)
	add("initial_backoff", a.InitialBackoff != b.InitialBackoff, a.InitialBackoff, b.InitialBackoff)
	add("cpu_task_queue", a.CPUTaskQueue != b.CPUTaskQueue, a.CPUTaskQueue, b.CPUTaskQueue)
	add("method", a.Request.Verb() != b.Request.Verb(), a.Request.Verb(), b.Request.Verb())
	add("headers", !slices.Equal(headerNames(a.Request), headerNames(b.Request)), headerNames(a.Request), headerNames(b.Request))
	return strings.Join(diff, ", ")
}

func modeName(failFast bool) string {
	if failFast {
		return workflows.ModeFailFast
	}
	return workflows.ModeCollect
}
