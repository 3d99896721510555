package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// parseStart reads start's flags and URLs and refuses what cannot run,
// naming the flag, argument or line. done: the usage was asked for.
func parseStart(args []string, stdin io.Reader, stderr io.Writer) (o options, urls []string, done bool, err error) {
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: starter [start] [flags] [URL...]     start a batch and wait for it\n       starter status|cancel|results|bodies [flags] WORKFLOW_ID\n       starter gc --older-than 720h\n       starter schedule create|update|list|describe|trigger|pause|unpause|delete [flags]\n\nURLs come from the arguments, --file (one per line, # comments), or stdin.\nHow they are asked for: --header, --header-secret, --method, --data (or per URL, a JSON line in the file).\nThe Temporal connection comes from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the other TEMPORAL_* variables.\n\nflags of start:\n")
		fs.PrintDefaults()
	}
	o.batchFlags(fs, false)
	fs.StringVar(&o.taskQueue, "task-queue", workflows.TaskQueue, "task queue of the workflow and its fetches")
	fs.StringVar(&o.id, "id", "", "workflow ID; starting the same ID again attaches to that batch instead of fetching twice (default: a new ID)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON instead of a table")
	fs.BoolVar(&o.noWait, "no-wait", false, "print the workflow ID and run ID and exit without waiting")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress on stderr")
	o.devFlags(fs)
	o.storeFlags(fs, "large URL lists go in, large results come out")
	fs.StringVar(&o.outFile, "out", "", "also write the results to this file as JSON lines")
	fs.StringVar(&o.logLevel, "log-level", "off", "log of the Temporal client (and, with --dev, the workers): off, debug, info, warn or error")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return o, nil, done, err
	}
	o.given = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.given[f.Name] = true })
	if err := checkWritable(o.outFile); err != nil {
		return o, nil, false, &exitError{exitUsage, err}
	}
	if o.saveDir != "" {
		o.input.KeepBodies = true
		o.saveLog = stderr
		if o.noWait {
			return o, nil, false, &exitError{exitUsage, errors.New("--save writes the bodies when the batch ends: leave out --no-wait (or later: starter bodies WORKFLOW_ID --save DIR)")}
		}
	}
	if o.input.Process == "sha256" {
		o.input.Process = "" // the default, as the input leaves it out
	}
	if o.previous != "" && o.input.Incremental != "" {
		return o, nil, false, &exitError{exitUsage, errors.New("--previous and --incremental: give one (an incremental batch compares with the last of its chain)")}
	}
	if !o.dev && (o.serve || o.demo || o.demoURLs > 0) {
		return o, nil, false, &exitError{exitUsage, errors.New("--serve, --demo and --demo-urls go with --dev")}
	}
	if err := o.finishRequest(stdin, urlsFromStdin(positional, o.file, !o.dev), false, stderr); err != nil {
		return o, nil, false, err
	}
	if err := o.readList(positional, stdin, !o.dev, stderr); err != nil {
		return o, nil, false, err
	}
	urls = o.list.urls
	if o.input.MaxInFlight <= 0 {
		return o, nil, false, &exitError{exitUsage, fmt.Errorf("--max-in-flight must be at least 1, not %d", o.input.MaxInFlight)}
	}
	if o.input.MaxAttempts <= 0 {
		return o, nil, false, &exitError{exitUsage, fmt.Errorf("--max-attempts must be at least 1, not %d", o.input.MaxAttempts)}
	}
	o.input.URLRequests = o.list.own
	if !o.dev {
		if err := checkInput(o.input, urls); err != nil {
			return o, nil, false, err
		}
	}
	return o, urls, false, nil
}

// runStart runs `starter [start] [flags] [URL...]`: it starts a batch and
// waits for it.
func runStart(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, urls, done, err := parseStart(args, stdin, stderr)
	if done || err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var c client.Client
	var webUI string
	if o.dev {
		fresh := freshDevDB(o.devDB)
		stack, err := startDev(ctx, o, stderr)
		if err != nil {
			return &exitError{exitInternal, err}
		}
		defer stack.Stop()
		c, webUI, o.store, o.address = stack.Client, stack.WebUIAddress(), stack.Store, stack.FrontendAddress()
		if len(urls) == 0 && o.serve && !fresh && !o.demo && o.demoURLs == 0 {
			fmt.Fprintf(stderr, "serving the Web UI at %s, without the demo batch (this database ran it before: --demo runs it again); Ctrl-C to stop\n", webUI)
			<-ctx.Done()
			return nil
		}
		if len(urls) == 0 {
			urls = stack.DemoURLs(o.demoURLs)
		}
	} else {
		if c, err = dial(ctx, o.logLevel); err != nil {
			return err
		}
		defer c.Close()
		o.address = temporalAddress()
	}
	if err := checkInput(o.input, urls); err != nil {
		return err
	}
	o.input.URLs = urls
	if o.store == nil {
		if o.store, err = openStore(ctx, o); err != nil {
			return &exitError{exitUsage, err}
		}
	}

	run, err := start(ctx, c, &o, stderr)
	if err != nil {
		return err
	}
	o.workflowID = run.GetID()
	if !o.noWait {
		// Always said, so that status, results and cancel can be used on it.
		fmt.Fprintf(stderr, "batch workflow_id=%s run_id=%s\n", run.GetID(), run.GetRunID())
	}
	if webUI != "" {
		fmt.Fprintf(stderr, "watch it: %s/namespaces/default/workflows/%s/%s/history\n", webUI, run.GetID(), run.GetRunID())
	}
	if o.noWait {
		fmt.Fprintf(stdout, "workflow_id=%s run_id=%s\n", run.GetID(), run.GetRunID())
		return nil
	}

	// The files this starter uploaded belong to the batch now: it removes
	// them when it ends, also when waiting here is interrupted.
	err = wait(ctx, c, run, &o, stdout, stderr)
	if ctx.Err() == nil {
		o.dropClosedUploads(c, run) // ended, but maybe without its own cleanup (terminated)
	}
	if o.serve && o.dev {
		fmt.Fprintf(stderr, "serving the Web UI at %s; Ctrl-C to stop\n", webUI)
		<-ctx.Done()
	}
	return err
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

// checkWritable tells, before any batch starts, whether --out can be
// written, leaving nothing behind.
func checkWritable(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		return f.Close() // exists and is writable
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--out %s cannot be written: %w", path, err) // a directory, read-only...
	}
	f, err = os.CreateTemp(filepath.Dir(path), ".batchfetch-out-check-")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // not the name of the probe file
		}
		return fmt.Errorf("--out %s cannot be created in %s: %w", path, filepath.Dir(path), err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// checkInput refuses bad input before anything starts, with the
// workflow's own rules and messages.
func checkInput(in workflows.Input, urls []string) error {
	if len(urls) == 0 {
		return &exitError{exitUsage, errors.New("no URLs: give them as arguments, with --file, or on stdin")}
	}
	in.URLs = urls
	if _, err := in.Validate(); err != nil {
		return &exitError{exitUsage, fmt.Errorf("invalid input: %w", err)}
	}
	return nil
}

func start(ctx context.Context, c client.Client, o *options, stderr io.Writer) (client.WorkflowRun, error) {
	id := o.id
	if id != "" {
		if run, ok := attach(ctx, c, id, o.input, stderr); ok {
			return run, nil
		}
	}
	if id == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		id = "batchfetch-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
	}
	count := len(o.input.URLs)
	if !o.dev || !o.devWorkers { // the built-in workers use the stack's store
		if err := checkStore(ctx, c, o); err != nil {
			return nil, err
		}
	}
	if err := uploadInputs(ctx, o, id); err != nil {
		return nil, err
	}
	// Once the files are up, the start is made whole: a Ctrl-C now must
	// not leave them with no batch, nor a batch the starter did not see.
	startCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(startCtx, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: o.taskQueue,
		// The same ID never fetches twice: a second start attaches.
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("%d URLs, %s", count, o.input.Mode),
	}, workflows.WorkflowName, o.input)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	var nsErr *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &already):
		o.dropUploads() // another batch has this ID: ours were never read
		return c.GetWorkflow(ctx, id, ""), nil
	case errors.As(err, &nsErr):
		o.dropUploads()
		return nil, &exitError{exitInternal, fmt.Errorf("namespace not found: %v (create it, or set TEMPORAL_NAMESPACE)", err)}
	case err != nil:
		// Refused, or not known to be: a batch that did start removes
		// its files itself, so they stay unless it surely did not.
		if startRefused(err) {
			o.dropUploads()
		}
		return nil, &exitError{exitInternal, fmt.Errorf("starting workflow %s: %w", id, err)}
	}
	if o.id != "" && o.input.RemoveInputs {
		// Another starter may have started this ID a moment before: the
		// server then returns that batch, which reads its own files.
		if theirs, ok := startedInput(startCtx, c, id, run.GetRunID()); ok && (theirs.URLsFile != o.uploaded || theirs.PreviousFile != o.uploadedPrevious || bodyKey(theirs) != o.uploadedBody) {
			o.dropUploads()
			fmt.Fprintf(stderr, "attached to the batch workflow_id=%s another starter started a moment before, with its own inputs: the same ID never fetches twice\n", id)
		}
	}
	return run, nil
}

// attach finds an existing batch with workflow ID id: the same ID never
// fetches twice. It says so, and whether the batch's URLs differ from in's.
func attach(ctx context.Context, c client.Client, id string, in workflows.Input, stderr io.Writer) (client.WorkflowRun, bool) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return nil, false
	}
	runID := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	fmt.Fprintf(stderr, "attached to the existing batch workflow_id=%s run_id=%s (%s): the same ID never fetches twice\n",
		id, runID, d.GetWorkflowExecutionInfo().GetStatus())
	if theirs, ok := startedInput(ctx, c, id, runID); ok {
		if theirs.URLsFile == "" && !slices.Equal(theirs.URLs, in.URLs) {
			fmt.Fprintf(stderr, "note: its URLs are not these (%d URLs there, %d here); use another --id for a new batch\n", len(theirs.URLs), len(in.URLs))
		}
		if diff := settingsDiffer(theirs, in); diff != "" {
			fmt.Fprintf(stderr, "note: it runs with other settings (%s); use another --id for a new batch\n", diff)
		}
	}
	return c.GetWorkflow(ctx, id, runID), true
}

// startedInput is the input a batch was started with, decoded with the
// converter this starter's client uses (encrypted with
// BATCHFETCH_CODEC_KEYS, if set).
func startedInput(ctx context.Context, c client.Client, id, runID string) (workflows.Input, bool) {
	var in workflows.Input
	iter := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !iter.HasNext() {
		return in, false
	}
	ev, err := iter.Next()
	if err != nil {
		return in, false
	}
	started := ev.GetWorkflowExecutionStartedEventAttributes()
	if started == nil || payloadConverter().FromPayloads(started.GetInput(), &in) != nil {
		return in, false
	}
	return in, true
}

// batchFlags adds the flags of a batch's input (start, schedule create:
// scheduled, without those of one batch).
func (o *options) batchFlags(fs *flag.FlagSet, scheduled bool) {
	fs.StringVar(&o.file, "file", "", "read URLs from this file ('-' for stdin), one per line; # starts a comment; a line {\"url\": ..., \"headers\": {...}} is a URL with its own request fields")
	fs.StringVar(&o.input.Mode, "mode", workflows.ModeCollect, "collect (record each failure, finish the rest) or fail_fast (first failure cancels the batch)")
	fs.IntVar(&o.input.MaxInFlight, "max-in-flight", workflows.DefaultMaxInFlight, fmt.Sprintf("fetches running at once for this batch (1 to %d)", workflows.MaxInFlightLimit))
	fs.StringVar(&o.input.AttemptTimeout, "attempt-timeout", workflows.DefaultAttemptTimeout.String(), "time limit of one attempt")
	fs.StringVar(&o.input.URLTimeout, "url-timeout", "", "time limit of one URL, retries included (default none)")
	fs.IntVar(&o.input.MaxAttempts, "max-attempts", workflows.DefaultMaxAttempts, "attempts per URL, the first included")
	fs.StringVar(&o.input.InitialBackoff, "initial-backoff", workflows.DefaultInitialBackoff.String(), "wait before the first retry; doubles after each")
	fs.StringVar(&o.input.CPUTaskQueue, "cpu-task-queue", workflows.CPUTaskQueue, "task queue of the hash step")
	fs.StringVar(&o.input.Process, "process", "sha256", "the CPU step: sha256 (the hash alone), html (title and links), image (format and size), or a processor registered on your CPU workers")
	fs.StringVar(&o.input.Robots, "robots", "", "obey: ask each host's robots.txt first and skip what it disallows (robots_disallowed); ignore (the default): fetch every URL given")
	o.requestFlags(fs)
	fs.BoolVar(&o.skipInvalid, "skip-invalid", false, "leave out the invalid entries of the URLs given (not a URL, credentials, a space, not http or https, a bad JSON line) and report them on stderr, instead of refusing the batch")
	fs.BoolVar(&o.input.KeepBodies, "keep-bodies", false, "keep each ok body in the blob store, content-addressed (bodies/sha256/<hex>; the result's body_key)")
	if scheduled {
		return
	}
	fs.StringVar(&o.saveDir, "save", "", "keep the bodies (--keep-bodies) and write each to this directory when the batch ends, named by its URL's position; index.jsonl says which URL each holds")
	fs.StringVar(&o.previous, "previous", "", "an earlier batch's results file (JSON lines, as --out writes it): conditional requests, and which bodies changed")
	fs.StringVar(&o.input.Incremental, "incremental", "", "chain this batch to the last completed one of this name: compare with its results, leave this one's for the next")
}
