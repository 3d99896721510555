// Package devstack assembles a whole batchfetch installation in one process:
// the embedded Temporal server (with its Web UI), a client, the blob store,
// both worker pools and, on request, the demo site. `starter --dev`, the
// bench and the tests that need a whole stack start it here, and only here,
// so the server, the workers and the attach command always agree on the
// blob store.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/devserver"
	"github.com/batchfetch/batchfetch/internal/buildinfo"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/internal/demosite"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// Config describes a stack. The zero value is an in-memory server on a free
// port, no Web UI, a temporary blob directory and both worker pools with
// their defaults, allowed to fetch from 127.0.0.1 only.
type Config struct {
	// DBFile is the server's SQLite file, kept across restarts. Empty: an
	// in-memory database, lost on Stop.
	DBFile string
	// Port of the frontend (0: a free port). UIPort of the Web UI (0: none).
	Port, UIPort int
	// ServerLogLevel is the server's own log on stderr (empty: none).
	ServerLogLevel string
	// DynamicConfig overrides server settings.
	DynamicConfig map[string]any

	// BlobDir is the blob store's directory. Default: "blobs" beside DBFile,
	// or, with an in-memory database, a temporary directory that Stop
	// removes.
	BlobDir string
	// Store replaces the directory store (tests use slow or failing ones);
	// BlobDir then only names it in messages.
	Store blobstore.Store

	// DemoSite serves the demo pages on 127.0.0.1 (see DemoURLs).
	DemoSite bool
	// NoWorkers starts no worker pool: the caller starts its own with
	// StartWorkers.
	NoWorkers bool
	// Workers sizes the pools. Store and StoreLocation default to the
	// stack's; the guard allows 127.0.0.1 (and nothing else on loopback) unless
	// HTTP.Guard.Allow is set (an empty, non-nil list allows nothing).
	Workers workers.Config

	// Logger logs for the client and the workers (default: none).
	Logger log.Logger
	// DataConverter and FailureConverter of the client (default: the SDK's).
	DataConverter    converter.DataConverter
	FailureConverter converter.FailureConverter
	// MetricsHandler of the client, and so of its workers (default: none).
	MetricsHandler client.MetricsHandler
	// Interceptors of the client, and so of its workers (tracing).
	Interceptors []interceptor.ClientInterceptor
}

// Stack is a running stack. Stop it when done.
type Stack struct {
	// Client is connected to the stack's server.
	Client client.Client
	// Store is the blob store every pool of the stack uses.
	Store blobstore.Store
	// Pools are the stack's workers (nil with NoWorkers).
	Pools *workers.Pools

	cfg     Config
	server  *devserver.Server
	blobDir string
	demo    string
	stops   []func()
}

// Start starts the server, then the blob store, the demo site and the
// workers. On error nothing it started is left running.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	s := &Stack{cfg: cfg}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	srv, err := devserver.Start(devserver.Config{DBFile: cfg.DBFile, Port: cfg.Port, UIPort: cfg.UIPort,
		LogLevel: cfg.ServerLogLevel, DynamicConfig: cfg.DynamicConfig})
	if err != nil {
		return nil, err
	}
	s.server = srv
	s.stops = append(s.stops, func() { _ = srv.Stop() })
	if err := s.openStore(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = logging.SDK(zap.NewNop())
	}
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: logger,
		DataConverter: cfg.DataConverter, FailureConverter: cfg.FailureConverter, MetricsHandler: cfg.MetricsHandler, Interceptors: cfg.Interceptors})
	if err != nil {
		return nil, fmt.Errorf("connecting to the dev server: %w", err)
	}
	s.Client = c
	s.stops = append(s.stops, c.Close)
	// The Web UI's list shows each batch's counts, and can filter on them.
	if err := workers.RegisterSearchAttributes(ctx, c, "default"); err != nil {
		return nil, err
	}
	if cfg.DemoSite {
		base, stop, err := s.serveDemo()
		if err != nil {
			return nil, err
		}
		s.demo = base
		s.stops = append(s.stops, stop)
	}
	if !cfg.NoWorkers {
		if s.Pools, err = s.StartWorkers(cfg.Workers); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Stack) openStore() error {
	s.blobDir = s.cfg.BlobDir
	if s.blobDir == "" && s.cfg.DBFile != "" {
		s.blobDir = filepath.Join(filepath.Dir(s.cfg.DBFile), "blobs")
	}
	if s.blobDir == "" {
		dir, err := os.MkdirTemp("", "batchfetch-dev-blobs-")
		if err != nil {
			return err
		}
		s.blobDir = dir
		s.stops = append(s.stops, func() { _ = os.RemoveAll(dir) })
	}
	if s.cfg.Store != nil {
		s.Store = s.cfg.Store
		return nil
	}
	store, err := blobstore.NewDir(s.blobDir)
	if err != nil {
		return err
	}
	s.Store = store
	return nil
}

// serveDemo starts the demo site. With a database file it keeps its
// address beside it and takes the same one next time when it is free: a
// batch interrupted with the stack resumes on URLs that still answer.
func (s *Stack) serveDemo() (base string, stop func(), err error) {
	if s.cfg.DBFile == "" {
		return demosite.Serve("127.0.0.1:0")
	}
	file := filepath.Join(filepath.Dir(s.cfg.DBFile), "demo-site.addr")
	if last, err := os.ReadFile(file); err == nil {
		if base, stop, err := demosite.Serve(strings.TrimSpace(string(last))); err == nil {
			return base, stop, nil
		}
	}
	if base, stop, err = demosite.Serve("127.0.0.1:0"); err != nil {
		return "", nil, err
	}
	_ = os.WriteFile(file, []byte(strings.TrimPrefix(base, "http://")+"\n"), 0o644)
	return base, stop, nil
}

// StartWorkers starts more pools on the stack's server (on other task
// queues, with other sizes, observers or stores; cfg.Store nil means the
// stack's). Stop stops them too, if the caller has not.
func (s *Stack) StartWorkers(cfg workers.Config) (*workers.Pools, error) {
	if s.Client == nil {
		return nil, errors.New("devstack: not started")
	}
	if cfg.Store == nil {
		cfg.Store, cfg.StoreLocation = s.Store, s.blobDir
	}
	if cfg.Deployment.MakeCurrent == "" {
		// The newest build is the one to run: no deployment step.
		cfg.Deployment.MakeCurrent = workers.MakeCurrentAlways
	}
	if cfg.HTTP.Guard.Allow == nil {
		// The demo site and test servers are on 127.0.0.1: allow it, and
		// only it, on loopback.
		cfg.HTTP.Guard.Allow = []string{"127.0.0.1"}
	}
	if s.cfg.Logger != nil {
		id, _ := blobstore.ID(context.Background(), cfg.Store)
		s.cfg.Logger.Info("workers starting", "role", orDefault(cfg.Role, workers.RoleAll), "allow", strings.Join(cfg.HTTP.Guard.Allow, ","),
			"allow_all", cfg.HTTP.Guard.Off, "blobs", cfg.StoreLocation, "blob_store_id", id)
	}
	p, err := workers.Start(s.Client, cfg)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, p.Stop)
	return p, nil
}

// FrontendAddress is the server's gRPC address (TEMPORAL_ADDRESS).
func (s *Stack) FrontendAddress() string { return s.server.FrontendHostPort() }

// WebUIAddress is the Web UI's base URL, or "" without a Web UI.
func (s *Stack) WebUIAddress() string { return s.server.UIAddress() }

// BlobDir is the blob store's directory (the workers' --blob-dir).
func (s *Stack) BlobDir() string { return s.blobDir }

// DBFile is the server's SQLite file, or "" in memory.
func (s *Stack) DBFile() string { return s.cfg.DBFile }

// DemoURLs returns the demo site's URLs: its demo set for n == 0 (a few
// kinds of page, one missing on purpose), n fast pages otherwise. Nil
// without DemoSite.
func (s *Stack) DemoURLs(n int) []string {
	switch {
	case s.demo == "":
		return nil
	case n > 0:
		return demosite.FastURLs(s.demo, n)
	default:
		return demosite.URLs(s.demo)
	}
}

// AttachCommand is the command, as it must be typed at the repository's
// root, that attaches another worker of role (fetch, cpu or all) to this
// stack: the server's address, the task queues, the blob store, the build
// ID, and for a worker that fetches the addresses the stack's own workers
// may fetch from (the demo site's 127.0.0.1).
func (s *Stack) AttachCommand(role string) string {
	w := s.cfg.Workers
	args := []string{"go", "run", "./worker", "--role", role}
	if role != workers.RoleCPU {
		switch allow := s.allow(); {
		case w.HTTP.Guard.Off:
			args = append(args, "--allow-all")
		case len(allow) > 0:
			args = append(args, "--allow", strings.Join(allow, ","))
		}
	}
	args = append(args, "--task-queue", orDefault(w.TaskQueue, workflows.TaskQueue), "--cpu-task-queue", orDefault(w.CPUTaskQueue, workflows.CPUTaskQueue),
		// The same build ID: a worker of another build would join another
		// version, which gets no work.
		"--blob-dir", s.blobDir, "--build-id", buildinfo.ID())
	line := "TEMPORAL_ADDRESS=" + cli.ShellQuote(s.FrontendAddress())
	for _, a := range args {
		line += " " + cli.ShellQuote(a)
	}
	return line
}

// allow is what the stack's own fetch workers may fetch although not
// public (see Config.Workers).
func (s *Stack) allow() []string {
	if a := s.cfg.Workers.HTTP.Guard.Allow; a != nil {
		return a
	}
	return []string{"127.0.0.1"}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Stop stops everything Start and StartWorkers started, last first: the
// workers finish or give back their tasks before the server goes. A nil
// Stack has nothing to stop.
func (s *Stack) Stop() {
	if s == nil {
		return
	}
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	s.stops = nil
}
