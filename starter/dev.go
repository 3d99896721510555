package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/tracing"
	"github.com/batchfetch/batchfetch/internal/workers"
)

func defaultDevDir(name string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "batchfetch", name)
}

// devFlags adds the flags of dev mode.
func (o *options) devFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.dev, "dev", false, "run an embedded Temporal server with the Web UI, a demo site and both workers in this process (URLs default to the demo site)")
	fs.BoolVar(&o.serve, "serve", false, "with --dev: keep the server, Web UI and workers running after the batch, until Ctrl-C")
	fs.StringVar(&o.devDB, "dev-db", defaultDevDir("dev.sqlite"), "with --dev: SQLite file holding the server's state")
	fs.IntVar(&o.devPort, "dev-port", 7233, "with --dev: frontend gRPC port")
	fs.IntVar(&o.devUIPort, "dev-ui-port", 8233, "with --dev: Web UI port")
	fs.BoolVar(&o.demo, "demo", false, "with --dev --serve and no URLs: run the demo batch also on a database that ran batches before (a fresh one always runs it)")
	fs.BoolVar(&o.devWorkers, "dev-workers", true, "with --dev: run the built-in fetch and CPU workers (false: only the server, Web UI and demo site; the batch waits for the workers you attach with the commands printed)")
	fs.IntVar(&o.demoURLs, "demo-urls", 0, "with --dev and no URLs: fetch this many fast demo pages instead of the demo set (try 100000)")
}

// freshDevDB tells whether the dev server's database is yet to be made:
// --serve runs the demo batch on a fresh one only, not on every start.
func freshDevDB(file string) bool {
	_, err := os.Stat(file)
	return errors.Is(err, fs.ErrNotExist)
}

// startDev starts the dev stack (embedded server and Web UI, demo site,
// both workers, all on one blob store) and says where everything is.
func startDev(ctx context.Context, o options, tr *tracing.Tracing, stderr io.Writer) (*devstack.Stack, error) {
	logger, err := sdkLogger(o.logLevel)
	if err != nil {
		return nil, err
	}
	// The built-in fetch worker holds the secrets of this environment, as
	// a fetch worker does: BATCHFETCH_SECRET_<NAME>, and the files of
	// BATCHFETCH_SECRETS_DIR.
	secrets, err := activities.NewSecretStore(os.Getenv("BATCHFETCH_SECRETS_DIR"), nil, os.Environ())
	if err != nil {
		return nil, fmt.Errorf("BATCHFETCH_SECRETS_DIR: %w", err)
	}
	stack, err := devstack.Start(ctx, devstack.Config{DBFile: o.devDB, BlobDir: o.devBlobDir(), Port: o.devPort, UIPort: o.devUIPort, DemoSite: true, Logger: logger,
		Interceptors: tr.Interceptors(),
		NoWorkers:    !o.devWorkers, Workers: workers.Config{TaskQueue: o.taskQueue, CPUTaskQueue: o.input.CPUTaskQueue, Secrets: secrets,
			HTTP: activities.ClientConfig{TracerProvider: tr.Provider()}}})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "dev server %s, Web UI %s\n", stack.FrontendAddress(), stack.WebUIAddress())
	id, _ := blobstore.ID(ctx, stack.Store)
	fmt.Fprintf(stderr, "database %s, blobs %s (store identity %s)\n", stack.DBFile(), stack.BlobDir(), id)
	if o.devWorkers {
		fmt.Fprintf(stderr, "built-in fetch and CPU workers: fetch from public addresses and 127.0.0.1 (the demo site)\n")
		if names, err := secrets.Names(); err == nil && len(names.Env)+len(names.Dir) > 0 {
			fmt.Fprintf(stderr, "secrets of the built-in fetch worker: %s\n", strings.Join(append(names.Env, names.Dir...), ", "))
		}
	} else {
		fmt.Fprintf(stderr, "no built-in workers (--dev-workers=false): batches wait until you attach a fetch and a CPU worker\n")
	}
	fmt.Fprintf(stderr, "attach a fetch worker: %s\n", stack.AttachCommand(workers.RoleFetch))
	fmt.Fprintf(stderr, "attach a CPU worker: %s\n", stack.AttachCommand(workers.RoleCPU))
	return stack, nil
}

// devBlobDir is the dev stack's blob directory: --blob-dir (or
// BATCHFETCH_BLOB_DIR) when given, else the one beside a --dev-db given,
// else the default every command shares.
func (o options) devBlobDir() string {
	if o.given["dev-db"] && !o.given["blob-dir"] {
		return "" // beside the database
	}
	return o.blobDir
}

// devPortFlags are the port flags a user gave, for a command line that
// runs the same dev server again.
func (o options) devPortFlags() string {
	out := ""
	if o.devPort != 7233 {
		out += fmt.Sprintf(" --dev-port %d", o.devPort)
	}
	if o.devUIPort != 8233 {
		out += fmt.Sprintf(" --dev-ui-port %d", o.devUIPort)
	}
	return out
}
