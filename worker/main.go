// Command worker runs batchfetch's fetch worker, CPU worker, or both.
//
//	worker --role fetch                        # I/O: workflows and fetches, 5,000 at once
//	worker --role cpu --cpu-slots 4            # CPU: hashes
//
// The Temporal connection comes from the TEMPORAL_* environment variables;
// every flag can also be set as BATCHFETCH_<FLAG> (for example
// BATCHFETCH_FETCH_SLOTS=200).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/codec"
	"github.com/batchfetch/batchfetch/internal/buildinfo"
	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/metrics"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/politeness"
	"github.com/batchfetch/batchfetch/workflows"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // the usage is printed; asking for it is no error
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2, as for the starter.
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// settings are the worker's flags, parsed.
type settings struct {
	cfg                                                 workers.Config
	allow, blobDir, blobURL, metricsListen, codecListen *string
	codecOrigins, logLevel, logFormat                   *string
	perHostRate                                         *string
	connectTimeout                                      *time.Duration
	version                                             *bool
	creds                                               credentials
}

// newFlags declares every flag; docker-compose.yml and its test use them.
func newFlags() (*flag.FlagSet, *settings) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	st := &settings{}
	cfg := &st.cfg
	fs.StringVar(&cfg.Role, "role", workers.RoleAll, "which pool to run: fetch (workflows and fetches), cpu (hashes), all, or codec (only the codec endpoint)")
	fs.StringVar(&cfg.TaskQueue, "task-queue", workflows.TaskQueue, "task queue of workflows and fetch activities")
	fs.StringVar(&cfg.CPUTaskQueue, "cpu-task-queue", workflows.CPUTaskQueue, "task queue of hash activities")
	fs.IntVar(&cfg.FetchSlots, "fetch-slots", workers.DefaultFetchSlots, "requests this worker has open at once, over every batch it serves (a batch asks for up to max_in_flight)")
	fs.IntVar(&cfg.CPUSlots, "cpu-slots", workers.DefaultCPUSlots(), "hashes this worker runs at once; the default is the number of CPUs less one, so hashing never starves the I/O")
	fs.IntVar(&cfg.CPUNice, "cpu-nice", workers.DefaultCPUNice, "niceness (0 to 19) of the threads that hash bodies of a MiB or more, so that fetches and other processes on the machine get a core first when they need one; 0 leaves them at the worker's own (Linux)")
	fs.Float64Var(&cfg.FetchRate, "fetch-rate", 0, "fetches started per second by this worker (0: no cap)")
	fs.Float64Var(&cfg.FetchQueueRate, "fetch-queue-rate", 0, "fetches started per second across all workers of the task queue (0: no cap)")
	fs.Float64Var(&cfg.CPURate, "cpu-rate", 0, "hashes started per second by this worker (0: no cap)")
	fs.Float64Var(&cfg.CPUQueueRate, "cpu-queue-rate", 0, "hashes started per second across all CPU workers (0: no cap)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", activities.DefaultMaxBodyBytes, "largest body accepted; a longer one fails the URL")
	fs.Int64Var(&cfg.HashBacklog, "hash-backlog", activities.DefaultBacklog, "bytes a batch may have fetched and not yet hashed: above it, its fetching waits for the CPU workers")
	fs.IntVar(&cfg.HTTP.MaxConnsPerHost, "max-conns-per-host", 0, "HTTP connections to one host at once, a politeness cap (0: as many as --fetch-slots); a request waiting for one counts against url_timeout, not attempt_timeout")
	fs.IntVar(&cfg.HTTP.MaxRedirects, "max-redirects", 5, "redirects followed per request")
	st.perHostRate = fs.String("per-host-rate", "", "default per-host rate of every batch, N/s or N/m (\"2/s\", \"30/m\"), shared out between the fetch workers; a batch's per_host.rate wins (empty: none)")
	fs.IntVar(&cfg.PerHost.MaxInFlight, "per-host-max-in-flight", 0, "default requests of a batch open at once to one host, shared out between the fetch workers (at least 1 each); a batch's per_host.max_in_flight wins (0: none)")
	st.allow = fs.String("allow", "", "comma-separated CIDRs, addresses or host names to fetch although not public (by default loopback, private, link-local and metadata addresses are refused)")
	fs.BoolVar(&cfg.HTTP.Guard.Off, "allow-all", false, "fetch any address, internal ones included (only where every URL is trusted)")
	st.blobDir = fs.String("blob-dir", blobstore.DefaultDir(), "directory for bodies between fetch and hash; fetch and CPU workers must share it")
	st.blobURL = fs.String("blob-url", "", "an object store instead of --blob-dir, for workers on different machines: s3://bucket?region=..., gs://bucket, azblob://container")
	st.metricsListen = fs.String("metrics-listen", "", "serve Prometheus metrics at http://ADDRESS/metrics (for example 0.0.0.0:9090)")
	st.codecListen = fs.String("codec-listen", "", "serve the codec-server endpoint for the Web UI on this address (needs BATCHFETCH_CODEC_KEYS and BATCHFETCH_CODEC_TOKEN)")
	st.codecOrigins = fs.String("codec-origins", "http://127.0.0.1:8233,http://localhost:8233", "Web UI origins allowed to call the codec endpoint")
	st.connectTimeout = fs.Duration("connect-timeout", 0, "how long to wait for the Temporal server and its namespace at start, retrying with backoff (0: until stopped)")
	st.logLevel = fs.String("log-level", "info", "debug, info, warn or error")
	st.logFormat = fs.String("log-format", "console", "console or json")
	credentialFlags(fs, &st.creds)
	deploymentFlags(fs, &cfg.Deployment)
	st.version = fs.Bool("version", false, "print the build ID (first line), the version, the Temporal Go SDK's and Go's, and exit")
	return fs, st
}

// deploymentFlags declares the Worker Versioning flags.
func deploymentFlags(fs *flag.FlagSet, d *workers.Deployment) {
	fs.StringVar(&d.Name, "deployment-name", workers.DeploymentName, "the Worker Deployment this worker joins; fetch and CPU workers of one build are one version of it")
	fs.StringVar(&d.BuildID, "build-id", buildinfo.ID(), "this build's ID in the deployment (default: the release stamp, the commit, or the executable's hash)")
	fs.StringVar(&d.MakeCurrent, "make-current", workers.MakeCurrentFirst, "make this version the deployment's current one: first (only if the deployment never had one: a first install or the first versioned release), never (the operator does: temporal worker deployment set-current-version), or always")
	fs.BoolVar(&d.Unversioned, "unversioned", false, "poll without Worker Versioning (for a server without Worker Deployments)")
}

// storeID is the store's identity for the log ("" when it has none).
func storeID(s blobstore.Store) string {
	id, _ := blobstore.ID(context.Background(), s)
	return id
}

// allowList says, for the log, which addresses that are not public this
// worker fetches from (--allow, --allow-all).
func allowList(cfg workers.Config) string {
	switch {
	case cfg.Role == workers.RoleCPU:
		return "none (a CPU worker fetches nothing)"
	case cfg.HTTP.Guard.Off:
		return "every address (--allow-all)"
	case len(cfg.HTTP.Guard.Allow) == 0:
		return "public addresses only (no --allow)"
	}
	return "public addresses and " + strings.Join(cfg.HTTP.Guard.Allow, ",")
}

// healthcheck exits 0 when url answers 200 (for container health checks:
// the image has no shell or curl).
func healthcheck(url string) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		if len(args) != 2 {
			return usageError{errors.New("usage: worker healthcheck URL (exits 0 when URL answers 200)")}
		}
		return healthcheck(args[1])
	}
	fs, st := newFlags()
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q (flags only; or: worker healthcheck URL)", fs.Args())}
	}
	version := false // only from the command line, never BATCHFETCH_VERSION
	fs.Visit(func(f *flag.Flag) { version = version || f.Name == "version" })
	if err := cli.EnvFallback(fs, "BATCHFETCH_"); err != nil {
		return usageError{err}
	}
	if st.cfg.Deployment.BuildID == "" {
		st.cfg.Deployment.BuildID = buildinfo.ID() // BATCHFETCH_BUILD_ID set empty
	}
	if version {
		fmt.Print(buildinfo.Describe("batchfetch worker", st.cfg.Deployment.BuildID))
		return nil
	}
	// Checked before anything starts or connects.
	switch d := st.cfg.Deployment; {
	case d.MakeCurrent != workers.MakeCurrentFirst && d.MakeCurrent != workers.MakeCurrentNever && d.MakeCurrent != workers.MakeCurrentAlways:
		return usageError{fmt.Errorf("--make-current %q: want first, never or always", d.MakeCurrent)}
	case strings.TrimSpace(d.BuildID) != d.BuildID || len(d.BuildID) > 255:
		return usageError{fmt.Errorf("--build-id %q: at most 255 characters, no surrounding spaces", d.BuildID)}
	case strings.Contains(d.Name, ".") || d.Name == "":
		return usageError{fmt.Errorf("--deployment-name %q: not empty, and no '.' (Temporal refuses it)", d.Name)}
	}
	switch st.cfg.Role {
	case workers.RoleFetch, workers.RoleCPU, workers.RoleAll, "codec":
	default:
		return usageError{fmt.Errorf("--role %q: want fetch, cpu, all or codec", st.cfg.Role)}
	}
	if st.cfg.HTTP.MaxConnsPerHost < 0 {
		return usageError{fmt.Errorf("--max-conns-per-host must be at least 0 (0: as many as --fetch-slots), not %d", st.cfg.HTTP.MaxConnsPerHost)}
	}
	if st.cfg.PerHost.MaxInFlight < 0 {
		return usageError{fmt.Errorf("--per-host-max-in-flight must be at least 0 (0: no default), not %d", st.cfg.PerHost.MaxInFlight)}
	}
	if *st.perHostRate != "" {
		r, err := politeness.ParseRate(*st.perHostRate)
		if err != nil {
			return usageError{fmt.Errorf("--per-host-rate: %w", err)}
		}
		st.cfg.PerHost.Rate = r
	}
	if st.cfg.CPUNice < 0 || st.cfg.CPUNice > 19 {
		return usageError{fmt.Errorf("--cpu-nice must be from 0 to 19, not %d", st.cfg.CPUNice)}
	}
	if st.cfg.CPUNice == 0 {
		st.cfg.CPUNice = -1 // the worker's own niceness
	}
	if st.cfg.FetchSlots < 1 || st.cfg.CPUSlots < 1 {
		return usageError{fmt.Errorf("--fetch-slots and --cpu-slots must be at least 1 (got %d and %d)", st.cfg.FetchSlots, st.cfg.CPUSlots)}
	}
	origins, err := codec.ParseOrigins(*st.codecOrigins)
	if err != nil {
		return usageError{fmt.Errorf("--codec-origins: %w", err)}
	}
	if *st.connectTimeout < 0 {
		return usageError{fmt.Errorf("--connect-timeout must be at least 0 (0: wait until stopped), not %s", *st.connectTimeout)}
	}
	if err := st.creds.check(); err != nil {
		return usageError{err}
	}
	if *st.allow != "" {
		if err := activities.CheckAllow(strings.Split(*st.allow, ",")); err != nil {
			return usageError{fmt.Errorf("--allow: %w", err)}
		}
	}
	cfg := st.cfg
	allow, blobDir, metricsListen, codecListen := st.allow, st.blobDir, st.metricsListen, st.codecListen
	blobLocation := *blobDir
	if *st.blobURL != "" {
		blobLocation = *st.blobURL
	}
	logLevel, logFormat := st.logLevel, st.logFormat

	if *allow != "" {
		cfg.HTTP.Guard.Allow = strings.Split(*allow, ",")
	}
	logger, err := logging.New(*logLevel, *logFormat)
	if err != nil {
		return err
	}
	defer logger.Sync() //nolint:errcheck
	if cfg.Role == workers.RoleFetch || cfg.Role == workers.RoleAll {
		if err := st.creds.apply(&cfg, logger); err != nil {
			return err
		}
	}
	store, err := blobstore.Open(context.Background(), blobLocation)
	if err != nil {
		return err
	}
	blobLocation = blobstore.Redacted(blobLocation) // as logs and messages say it
	cfg.Store, cfg.StoreLocation = store, blobLocation

	opts, err := cli.ClientOptions()
	if err != nil {
		return err
	}
	opts.Logger = logging.SDK(logger)
	var m *metrics.Metrics
	if *metricsListen != "" {
		m = metrics.New(cfg.Role)
		defer m.Close()
		opts.MetricsHandler = m.SDKHandler()
		cfg.Observer = m
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Listeners open before anything else: a port in use is an error
	// (exit 1), not a stop.
	var ready atomic.Bool // connected to Temporal: /readyz
	if m != nil {
		l, err := net.Listen("tcp", *metricsListen)
		if err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "not connected to Temporal yet", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		logger.Info("metrics at /metrics, readiness at /readyz", zap.String("address", l.Addr().String()))
	}
	if *codecListen != "" {
		cd, err := codec.FromEnv()
		if err != nil {
			return err
		}
		token := os.Getenv("BATCHFETCH_CODEC_TOKEN")
		if cd == nil || token == "" {
			return fmt.Errorf("--codec-listen needs BATCHFETCH_CODEC_KEYS (or BATCHFETCH_CODEC_KEY_FILE) and BATCHFETCH_CODEC_TOKEN")
		}
		if len(token) < codec.MinTokenLength {
			return fmt.Errorf("BATCHFETCH_CODEC_TOKEN is %d characters; use at least %d (head -c 24 /dev/urandom | base64)", len(token), codec.MinTokenLength)
		}
		l, err := net.Listen("tcp", *codecListen)
		if err != nil {
			return fmt.Errorf("--codec-listen: %w", err)
		}
		srv := &http.Server{Handler: cd.Handler(token, origins), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
		go func() { _ = srv.Serve(l) }()
		defer srv.Close()
		logger.Info("codec server listening", zap.String("address", l.Addr().String()))
	}
	if cfg.Role == "codec" {
		if *codecListen == "" {
			return fmt.Errorf("--role codec needs --codec-listen")
		}
		<-ctx.Done()
		return nil
	}
	tr, err := startTracing(cfg.Role, logger)
	if err != nil {
		return err
	}
	defer stopTracing(tr, logger) // after the workers and the client
	opts.Interceptors = append(opts.Interceptors, tr.Interceptors()...)
	cfg.HTTP.TracerProvider = tr.Provider()
	c, err := connect(ctx, opts, *st.connectTimeout, logger)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the server came up: a clean stop
		}
		return err
	}
	defer c.Close()
	ready.Store(true)
	logger.Info("worker starting",
		zap.String("role", cfg.Role), zap.String("address", opts.HostPort), zap.String("namespace", opts.Namespace),
		zap.String("task_queue", cfg.TaskQueue), zap.String("cpu_task_queue", cfg.CPUTaskQueue),
		zap.Int("fetch_slots", cfg.FetchSlots), zap.Int("cpu_slots", cfg.CPUSlots), zap.String("blobs", blobLocation), zap.String("blob_store_id", storeID(store)), zap.String("allow", allowList(cfg)),
		zap.String("deployment", cfg.Deployment.Name), zap.String("build_id", cfg.Deployment.BuildID), zap.Bool("versioned", !cfg.Deployment.Unversioned),
		zap.String("per_host_default", cfg.PerHost.String()))
	if limit := openFilesLimit(); limit > 0 && cfg.Role != workers.RoleCPU {
		if msg := filesWarning(cfg.FetchSlots, limit); msg != "" {
			logger.Warn(msg)
		}
	}
	cfg.OnDeployment = func(version, what string, err error) {
		logger.Info("deployment version", zap.String("version", version), zap.String("current", what), zap.Error(err))
	}
	err = workers.Run(ctx, c, cfg)
	logger.Info("worker stopped")
	return err
}
