// Command starter starts a BatchFetch workflow and waits for its result.
//
//	starter --dev                                 # embedded server, demo site, workers
//	starter https://example.com/a https://example.com/b
//	starter --file urls.txt --mode fail_fast --json
//	cat urls.txt | starter --no-wait
//
// Each subcommand has its own file (start.go, status.go, cancel.go,
// results.go); dev.go runs the dev stack for --dev. What they do with a
// batch (start or attach, progress, wait, results, cancel, kept bodies)
// goes through the client package, github.com/batchfetch/batchfetch/client.
//
// Exit status: 0 every URL ok; 1 the batch failed, was canceled, or a URL
// failed; 2 bad usage or input rejected (InvalidInput); 3 Temporal could not
// be reached or another error stopped the command; 4 no batch has that
// workflow ID; 5 the batch is not in a state for the command (results of a
// running batch, cancel of a finished one); 6 the starter's blob store is
// not the workers' (refused before anything started, or a batch that ran
// has its results in theirs); 130 interrupted while waiting (the batch
// goes on).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/blobstore"
	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/internal/buildinfo"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/workflows"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitInternal = 3
	exitNotFound = 4 // status, cancel, results: no batch with that workflow ID
	exitState    = 5 // results of a running batch, cancel of a finished one
	// exitStore: the starter's blob store is not the workers' (--blob-dir,
	// --blob-url): refused before anything started, or the results of a
	// batch that ran are in theirs.
	exitStore = 6
	// exitInterrupted: Ctrl-C (or SIGTERM) while waiting; the batch goes on.
	exitInterrupted = 130
)

type options struct {
	input       workflows.Input
	file        string
	id          string
	taskQueue   string
	address     string // the Temporal server's, for messages
	jsonOut     bool
	noWait      bool
	quiet       bool
	dev         bool
	serve       bool
	demo        bool
	devWorkers  bool            // --dev-workers: the dev stack runs its own workers
	given       map[string]bool // the flags given, on the command line or as BATCHFETCH_*
	devDB       string
	devPort     int
	devUIPort   int
	logLevel    string
	blobDir     string
	blobURL     string
	demoURLs    int
	outFile     string
	saveDir     string    // --save: the kept bodies go there
	previous    string    // --previous: a local results file
	changed     bool      // results --changed: only the changed results
	saveLog     io.Writer // where --save says what it saved (default: none)
	store       blobstore.Store
	batches     *bfclient.Client // on store: starts batches, reads their results and bodies
	finished    bool             // reading a finished batch (results), not starting one
	workflowID  string           // the batch's, once known
	req         requestFlags
	list        givenURLs // the URLs as given, with their own requests
	skipInvalid bool      // --skip-invalid: leave invalid entries out
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

// subcommands maps each subcommand to its implementation (one file each);
// without one, the arguments are start's.
var subcommands = map[string]func(args []string, stdin io.Reader, stdout, stderr io.Writer) error{
	"start":    runStart,
	"status":   runStatus,
	"cancel":   runCancel,
	"results":  runResults,
	"bodies":   runBodies,
	"schedule": runSchedule,
	"gc":       runGC,
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	name := "start"
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		_, err := io.WriteString(stdout, buildinfo.Describe("batchfetch starter", buildinfo.ID()))
		return err
	}
	if len(args) > 0 {
		if _, ok := subcommands[args[0]]; ok {
			name, args = args[0], args[1:]
		}
	}
	return subcommands[name](args, stdin, stdout, stderr)
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

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
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
