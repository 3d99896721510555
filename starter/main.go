// Command starter starts a BatchFetch workflow and waits for its result.
//
//	starter --dev                                 # embedded server, demo site, workers
//	starter https://example.com/a https://example.com/b
//	starter --file urls.txt --mode fail_fast --json
//	cat urls.txt | starter --no-wait
//
// Exit status: 0 every URL ok; 1 the batch failed, was canceled, or a URL
// failed; 2 bad usage or input rejected (InvalidInput); 3 Temporal could not
// be reached or another error stopped the command.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"text/tabwriter"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/devserver"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/internal/demosite"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitInternal = 3
)

type options struct {
	input     workflows.Input
	file      string
	id        string
	taskQueue string
	jsonOut   bool
	noWait    bool
	quiet     bool
	dev       bool
	serve     bool
	devDB     string
	devPort   int
	devUIPort int
	logLevel  string
	blobDir   string
	blobURL   string
	demoURLs  int
	outFile   string
	store     blobstore.Store
	uploaded  string // the URL list this run put in the blob store
}

// exitError carries an exit status up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	code := exitInternal
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintln(os.Stderr, "starter:", err)
	}
	os.Exit(code)
}

// errSilent marks an exit whose reason is already printed.
var errSilent = errors.New("")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "start":
			args = args[1:]
		case "status", "cancel", "results":
			return command(args[0], args[1:], stdout, stderr)
		}
	}
	var o options
	fs := flag.NewFlagSet("starter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: starter [start] [flags] [URL...]     start a batch and wait for it\n       starter status|cancel|results [flags] WORKFLOW_ID\n\nURLs come from the arguments, --file (one per line, # comments), or stdin.\nThe Temporal connection comes from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and the other TEMPORAL_* variables.\n\nflags of start:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.file, "file", "", "read URLs from this file ('-' for stdin), one per line; # starts a comment")
	fs.StringVar(&o.input.Mode, "mode", workflows.ModeCollect, "collect (record each failure, finish the rest) or fail_fast (first failure cancels the batch)")
	fs.IntVar(&o.input.MaxInFlight, "max-in-flight", workflows.DefaultMaxInFlight, "fetches running at once for this batch")
	fs.StringVar(&o.input.AttemptTimeout, "attempt-timeout", workflows.DefaultAttemptTimeout.String(), "time limit of one attempt")
	fs.StringVar(&o.input.URLTimeout, "url-timeout", "", "time limit of one URL, retries included (default none)")
	fs.IntVar(&o.input.MaxAttempts, "max-attempts", workflows.DefaultMaxAttempts, "attempts per URL, the first included")
	fs.StringVar(&o.input.InitialBackoff, "initial-backoff", workflows.DefaultInitialBackoff.String(), "wait before the first retry; doubles after each")
	fs.StringVar(&o.input.CPUTaskQueue, "cpu-task-queue", workflows.CPUTaskQueue, "task queue of the hash step")
	fs.StringVar(&o.taskQueue, "task-queue", workflows.TaskQueue, "task queue of the workflow and its fetches")
	fs.StringVar(&o.id, "id", "", "workflow ID; starting the same ID again attaches to that batch instead of fetching twice (default: a new ID)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as JSON instead of a table")
	fs.BoolVar(&o.noWait, "no-wait", false, "print the workflow ID and run ID and exit without waiting")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress on stderr")
	fs.BoolVar(&o.dev, "dev", false, "run an embedded Temporal server with the Web UI, a demo site and both workers in this process (URLs default to the demo site)")
	fs.BoolVar(&o.serve, "serve", false, "with --dev: keep the server, Web UI and workers running after the batch, until Ctrl-C")
	fs.StringVar(&o.devDB, "dev-db", defaultDevDir("dev.sqlite"), "with --dev: SQLite file holding the server's state")
	fs.IntVar(&o.devPort, "dev-port", 7233, "with --dev: frontend gRPC port")
	fs.IntVar(&o.devUIPort, "dev-ui-port", 8233, "with --dev: Web UI port")
	fs.IntVar(&o.demoURLs, "demo-urls", 0, "with --dev and no URLs: fetch this many fast demo pages instead of the demo set (try 100000)")
	fs.StringVar(&o.blobDir, "blob-dir", filepath.Join(os.TempDir(), "batchfetch-blobs"), "the workers' blob store: large URL lists go in, large results come out (env BATCHFETCH_BLOB_DIR)")
	fs.StringVar(&o.blobURL, "blob-url", "", "the workers' object store instead of --blob-dir (s3://bucket?region=..., gs://bucket, azblob://container)")
	fs.StringVar(&o.outFile, "out", "", "also write the results to this file as JSON lines")
	fs.StringVar(&o.logLevel, "log-level", "off", "log of the Temporal client (and, with --dev, the workers): off, debug, info, warn or error")
	positional, done, err := parseFlags(fs, args)
	if done || err != nil {
		return err
	}
	if err := checkWritable(o.outFile); err != nil {
		return &exitError{exitUsage, err}
	}
	urls, err := readURLs(positional, o.file, stdin, !o.dev)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if o.input.MaxInFlight <= 0 {
		return &exitError{exitUsage, fmt.Errorf("--max-in-flight must be at least 1, not %d", o.input.MaxInFlight)}
	}
	if o.input.MaxAttempts <= 0 {
		return &exitError{exitUsage, fmt.Errorf("--max-attempts must be at least 1, not %d", o.input.MaxAttempts)}
	}
	if !o.dev {
		if err := checkInput(o.input, urls); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var c client.Client
	var webUI string
	if o.dev {
		env, err := startDev(o)
		if err != nil {
			return &exitError{exitInternal, err}
		}
		defer env.stop()
		c, webUI, o.store = env.client, env.webUI, env.store
		if len(urls) == 0 && o.demoURLs > 0 {
			urls = demosite.FastURLs(env.demoBase, o.demoURLs)
		} else if len(urls) == 0 {
			urls = demosite.URLs(env.demoBase)
		}
		fmt.Fprintf(stderr, "dev server %s, Web UI %s\n", env.hostPort, webUI)
		fmt.Fprintf(stderr, "database %s, blobs %s\n", o.devDB, env.blobDir)
		fmt.Fprintf(stderr, "attach another worker: TEMPORAL_ADDRESS=%s go run ./worker --role cpu --blob-dir %s\n", env.hostPort, env.blobDir)
	} else {
		if c, err = dial(ctx, o.logLevel); err != nil {
			return err
		}
		defer c.Close()
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

	err = wait(ctx, c, run, &o, stdout, stderr)
	if o.uploaded != "" {
		_ = o.store.DeletePrefix(context.Background(), o.uploaded)
	}
	if o.serve && o.dev {
		fmt.Fprintf(stderr, "serving the Web UI at %s; Ctrl-C to stop\n", webUI)
		<-ctx.Done()
	}
	return err
}

// parseFlags parses args, flags and arguments in any order (flags after
// "--" are arguments), and fills unset flags from BATCHFETCH_* variables.
// It returns the arguments; done is true after --help (the usage is
// printed). A bad flag is an error that says so first.
func parseFlags(fs *flag.FlagSet, args []string) (positional []string, done bool, err error) {
	usage := fs.Usage
	fs.Usage = func() {} // printed for --help only, below
	out := fs.Output()
	fs.SetOutput(io.Discard)
	defer func() { fs.Usage = usage; fs.SetOutput(out) }()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(out)
				usage()
				return nil, true, nil
			}
			return nil, false, &exitError{exitUsage, fmt.Errorf("%v (%s --help lists the flags)", err, fs.Name())}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			positional = append(positional, rest...) // everything after -- is an argument
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := cli.EnvFallback(fs, "BATCHFETCH_"); err != nil {
		return nil, false, &exitError{exitUsage, err}
	}
	return positional, false, nil
}

// summary counts a batch's outcomes: canceled URLs apart from failed ones.
func summary(out workflows.Output) string {
	canceled := out.Canceled
	if out.Results != nil {
		canceled = 0
		for _, r := range out.Results {
			if r.Outcome == workflows.OutcomeCanceled {
				canceled++
			}
		}
	}
	s := fmt.Sprintf("%d ok, %d failed", out.OK, out.Failed-canceled)
	if canceled > 0 {
		s += fmt.Sprintf(", %d canceled", canceled)
	}
	return s
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
	iter := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if iter.HasNext() {
		if ev, err := iter.Next(); err == nil {
			var theirs workflows.Input
			if started := ev.GetWorkflowExecutionStartedEventAttributes(); started != nil &&
				converter.GetDefaultDataConverter().FromPayloads(started.GetInput(), &theirs) == nil &&
				theirs.URLsFile == "" && !slices.Equal(theirs.URLs, in.URLs) {
				fmt.Fprintf(stderr, "note: its URLs are not these (%d URLs there, %d here); use another --id for a new batch\n", len(theirs.URLs), len(in.URLs))
			}
		}
	}
	return c.GetWorkflow(ctx, id, runID), true
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
		return fmt.Errorf("--out %s cannot be written: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// storeLocation says where the starter's blob store is.
func (o options) storeLocation() string {
	if o.blobURL != "" {
		return o.blobURL
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
	if count > workflows.InlineLimit {
		// A long list goes through the blob store: Temporal caps a payload at 2 MB.
		key := "inputs/" + strings.Map(safeKeyRune, id) + ".txt"
		if err := upload(ctx, o.store, key, o.input.URLs); err != nil {
			return nil, &exitError{exitInternal, fmt.Errorf("writing the URL list to the blob store: %w", err)}
		}
		o.uploaded = key
		o.input.URLs, o.input.URLsFile = nil, key
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: o.taskQueue,
		// The same ID never fetches twice: a second start attaches.
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("%d URLs, %s", count, o.input.Mode),
	}, workflows.WorkflowName, o.input)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return c.GetWorkflow(ctx, id, ""), nil
	}
	var nsErr *serviceerror.NamespaceNotFound
	if errors.As(err, &nsErr) {
		return nil, &exitError{exitInternal, fmt.Errorf("namespace not found: %v (create it, or set TEMPORAL_NAMESPACE)", err)}
	}
	if err != nil {
		return nil, &exitError{exitInternal, fmt.Errorf("starting workflow %s: %w", id, err)}
	}
	return run, nil
}

func wait(ctx context.Context, c client.Client, run client.WorkflowRun, o *options, stdout, stderr io.Writer) error {
	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if !o.quiet {
			showProgress(ctx, c, run, done, stderr)
		}
	}()
	warned := make(chan struct{})
	go func() {
		defer close(warned)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			if !o.quiet {
				warnIfNoWorkers(ctx, c, o, stderr)
			}
		}
	}()
	var out workflows.Output
	err := run.Get(ctx, &out)
	close(done)
	<-progressDone
	<-warned

	if ctx.Err() != nil {
		return &exitError{exitFailed, fmt.Errorf("stopped waiting; the batch goes on: workflow_id=%s run_id=%s", run.GetID(), run.GetRunID())}
	}
	var appErr *temporal.ApplicationError
	var canceled *temporal.CanceledError
	switch {
	case err == nil:
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrInvalidInput:
		msg := "invalid input: " + appErr.Message()
		if o.uploaded != "" && strings.Contains(msg, o.uploaded) {
			id, _ := blobstore.ID(ctx, o.store)
			msg += fmt.Sprintf(" (this starter wrote the list to %s, identity %s)", o.storeLocation(), id)
		}
		return &exitError{exitUsage, errors.New(msg)}
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrBatchFailed:
		if appErr.HasDetails() && appErr.Details(&out) == nil {
			if perr := printOutput(ctx, stdout, out, *o); perr != nil {
				return perr
			}
		}
		return &exitError{exitFailed, fmt.Errorf("batch failed: %s", appErr.Message())}
	case errors.As(err, &canceled):
		if partial, ok := workflows.CanceledOutput(err); ok {
			if perr := printOutput(ctx, stdout, *partial, *o); perr != nil {
				return perr
			}
		}
		return &exitError{exitFailed, fmt.Errorf("batch canceled (workflow_id=%s)", run.GetID())}
	default:
		return &exitError{exitFailed, fmt.Errorf("batch %s: %w", run.GetID(), err)}
	}
	if err := printOutput(ctx, stdout, out, *o); err != nil {
		return err
	}
	if out.Failed > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d of %d URLs failed", out.Failed, out.Total)}
	}
	return nil
}

// showProgress polls the progress query until done closes.
func showProgress(ctx context.Context, c client.Client, run client.WorkflowRun, done <-chan struct{}, w io.Writer) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	tty := isTerminal(w)
	last := ""
	var began time.Time
	var startDone int
	for {
		select {
		case <-done:
			if tty && last != "" {
				fmt.Fprintln(w)
			}
			return
		case <-ctx.Done():
			if tty && last != "" {
				fmt.Fprintln(w) // what follows starts on its own line
			}
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := c.QueryWorkflow(qctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
		cancel()
		if err != nil {
			continue // not started yet, or finished between ticks
		}
		var p workflows.Progress
		if v.Get(&p) != nil {
			continue
		}
		now := time.Now()
		if began.IsZero() {
			began, startDone = now, p.Done
		}
		line := progressLine(p, now.Sub(began), p.Done-startDone)
		if line == last {
			continue
		}
		last = line
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

// progressLine renders progress as a bar with counts and the rate since
// waiting began.
func progressLine(p workflows.Progress, elapsed time.Duration, doneSince int) string {
	const width = 24
	filled := 0
	if p.Total > 0 {
		filled = p.Done * width / p.Total
	}
	rate := ""
	if elapsed >= time.Second {
		r := float64(doneSince) / elapsed.Seconds()
		switch {
		case r >= 10:
			rate = fmt.Sprintf(" %.0f URLs/s", r)
		case doneSince > 0:
			rate = fmt.Sprintf(" %.2g URLs/s", r) // never 0 while URLs finish
		}
	}
	return fmt.Sprintf("[%s%s] %d/%d%s  ok %d  failed %d  in flight %d",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Done, p.Total, rate, p.OK, p.Failed, p.InFlight)
}

func printOutput(ctx context.Context, w io.Writer, out workflows.Output, o options) error {
	if out.ResultsFile != "" && out.Results == nil {
		if mine, err := blobstore.ID(ctx, o.store); err == nil && mine != "" && out.BlobStore != "" && mine != out.BlobStore {
			return &exitError{exitUsage, fmt.Errorf("the results (%s) are in the workers' blob store (identity %s), not in this starter's (%s, identity %s): run the starter with the workers' --blob-dir or --blob-url",
				out.ResultsFile, out.BlobStore, o.storeLocation(), mine)}
		}
		results, err := readResults(ctx, o.store, out.ResultsFile)
		if err != nil {
			return &exitError{exitInternal, fmt.Errorf("reading the results (%s) from the blob store: %w", out.ResultsFile, err)}
		}
		out.Results = results
	}
	if o.outFile != "" {
		if err := writeJSONLines(o.outFile, out.Results); err != nil {
			return &exitError{exitInternal, err}
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tOUTCOME\tSTATUS\tATTEMPTS\tELAPSED\tSIZE\tSHA256\tURL")
	for i, r := range out.Results {
		sum := r.SHA256
		if len(sum) > 16 {
			sum = sum[:16] + "…"
		}
		if r.Outcome != workflows.OutcomeOK {
			sum = r.Error
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%d\t%s\t%s\n", i+1, r.Outcome, r.Status, r.Attempts,
			(time.Duration(r.ElapsedMS) * time.Millisecond).String(), r.Size, sum, r.URL)
	}
	fmt.Fprintf(tw, "\n%s\n", summary(out))
	return tw.Flush()
}

func readResults(ctx context.Context, store blobstore.Store, key string) ([]workflows.Result, error) {
	r, err := store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var results []workflows.Result
	dec := json.NewDecoder(bufio.NewReaderSize(r, 256<<10))
	for {
		var res workflows.Result
		if err := dec.Decode(&res); err == io.EOF {
			return results, nil
		} else if err != nil {
			return nil, err
		}
		results = append(results, res)
	}
}

func writeJSONLines(path string, results []workflows.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(bw)
	for i := range results {
		if err := enc.Encode(&results[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func upload(ctx context.Context, store blobstore.Store, key string, urls []string) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck
	bw := bufio.NewWriterSize(w, 256<<10)
	for _, u := range urls {
		bw.WriteString(u) //nolint:errcheck // checked at Flush
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit()
}

// safeKeyRune keeps workflow IDs usable as file names.
func safeKeyRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
		return r
	}
	return '_'
}

// readURLs collects URLs from args, a file, or stdin when it is not a terminal.
func readURLs(args []string, file string, stdin io.Reader, useStdin bool) ([]string, error) {
	urls := append([]string(nil), args...)
	var r io.Reader
	name := file
	switch {
	case file == "-":
		r, name = stdin, "stdin"
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading URLs: %w", err)
		}
		defer f.Close()
		r = f
	case len(args) == 0 && useStdin && !isTerminal(stdin):
		r, name = stdin, "stdin"
	}
	if r == nil {
		return urls, nil
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if i := strings.Index(s, "#"); i == 0 || (i > 0 && (s[i-1] == ' ' || s[i-1] == '\t')) {
			s = strings.TrimSpace(s[:i])
		}
		if s != "" {
			urls = append(urls, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading URLs from %s: %w", name, err)
	}
	return urls, nil
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func defaultDevDir(name string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "batchfetch", name)
}

type devEnv struct {
	client   client.Client
	store    blobstore.Store
	hostPort string
	webUI    string
	blobDir  string
	demoBase string
	stop     func()
}

// startDev runs the embedded server, the demo site and both workers.
func startDev(o options) (*devEnv, error) {
	srv, err := devserver.Start(devserver.Config{DBFile: o.devDB, Port: o.devPort, UIPort: o.devUIPort})
	if err != nil {
		return nil, err
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	stops = append(stops, func() { _ = srv.Stop() })
	base, stopSite, err := demosite.Serve("127.0.0.1:0")
	if err != nil {
		stopAll()
		return nil, err
	}
	stops = append(stops, stopSite)
	logger, err := sdkLogger(o.logLevel)
	if err != nil {
		stopAll()
		return nil, err
	}
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: logger})
	if err != nil {
		stopAll()
		return nil, fmt.Errorf("connecting to the dev server: %w", err)
	}
	stops = append(stops, c.Close)
	blobDir := filepath.Join(filepath.Dir(o.devDB), "blobs")
	store, err := blobstore.NewDir(blobDir)
	if err != nil {
		stopAll()
		return nil, err
	}
	// The demo site is on 127.0.0.1: the dev workers allow it, and only it.
	pools, err := workers.Start(c, workers.Config{Store: store, StoreLocation: blobDir, TaskQueue: o.taskQueue, CPUTaskQueue: o.input.CPUTaskQueue,
		HTTP: activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}}})
	if err != nil {
		stopAll()
		return nil, err
	}
	stops = append(stops, pools.Stop)
	return &devEnv{client: c, store: store, blobDir: blobDir, hostPort: srv.FrontendHostPort(), webUI: srv.UIAddress(), demoBase: base, stop: stopAll}, nil
}

func sdkLogger(level string) (log.Logger, error) {
	if level == "off" {
		return logging.SDK(zap.NewNop()), nil
	}
	z, err := logging.New(level, "console")
	if err != nil {
		return nil, err
	}
	return logging.SDK(z), nil
}
