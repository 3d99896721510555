package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	sdkclient "go.temporal.io/sdk/client"

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
	tr, err := startTracing(o.dev)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	defer stopTracing(tr, stderr) // the last to run: after the client, the dev stack

	var tc sdkclient.Client
	var webUI string
	if o.dev {
		fresh := freshDevDB(o.devDB)
		stack, err := startDev(ctx, o, tr, stderr)
		if err != nil {
			return &exitError{exitInternal, err}
		}
		defer stack.Stop()
		tc, webUI, o.store, o.address = stack.Client, stack.WebUIAddress(), stack.Store, stack.FrontendAddress()
		if len(urls) == 0 && o.serve && !fresh && !o.demo && o.demoURLs == 0 {
			fmt.Fprintf(stderr, "serving the Web UI at %s, without the demo batch (this database ran it before: --demo runs it again); Ctrl-C to stop\n", webUI)
			<-ctx.Done()
			return nil
		}
		if len(urls) == 0 {
			urls = stack.DemoURLs(o.demoURLs)
		}
	} else {
		if tc, err = dial(ctx, o.logLevel, tr.Interceptors()...); err != nil {
			return err
		}
		defer tc.Close()
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
	o.batches = newBatches(tc, o.store, o.taskQueue, tr.Provider()) // Start makes the batch's root span

	b, err := startBatch(ctx, tc, &o, stderr)
	if err != nil {
		return err
	}
	o.workflowID = b.ID()
	if !o.noWait {
		// Always said, so that status, results and cancel can be used on it.
		fmt.Fprintf(stderr, "batch workflow_id=%s run_id=%s\n", b.ID(), b.RunID())
	}
	if webUI != "" {
		fmt.Fprintf(stderr, "watch it: %s/namespaces/default/workflows/%s/%s/history\n", webUI, b.ID(), b.RunID())
	}
	if o.noWait {
		fmt.Fprintf(stdout, "workflow_id=%s run_id=%s\n", b.ID(), b.RunID())
		return nil
	}

	// The files this starter uploaded belong to the batch now: it removes
	// them when it ends, also when waiting here is interrupted (and Wait,
	// once it has ended, the files of one terminated).
	err = wait(ctx, tc, b, &o, stdout, stderr)
	if o.serve && o.dev {
		fmt.Fprintf(stderr, "serving the Web UI at %s; Ctrl-C to stop\n", webUI)
		<-ctx.Done()
	}
	return err
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
