// Package workers runs batchfetch's two worker pools against a Temporal
// client: the fetch pool (workflows and fetch activities, I/O bound) and the
// CPU pool (hash activities), each sized on its own.
package workers

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/cpuworker"
	"github.com/batchfetch/batchfetch/politeness"
	"github.com/batchfetch/batchfetch/process"
	"github.com/batchfetch/batchfetch/workflows"
)

// Roles a process can take.
const (
	RoleFetch = "fetch"
	RoleCPU   = "cpu"
	RoleAll   = "all"
)

// Config sizes the pools. Zero values take the defaults.
type Config struct {
	// Role is fetch, cpu or all (default all).
	Role string
	// TaskQueue serves workflows and fetches (default "batchfetch").
	TaskQueue string
	// CPUTaskQueue serves hashes (default "batchfetch-cpu").
	CPUTaskQueue string

	// FetchSlots is how many requests this worker has open at once, over
	// every chunk it runs (default DefaultFetchSlots).
	FetchSlots int
	// CPUSlots is how many hashes this worker runs at once (default
	// DefaultCPUSlots: the number of CPUs less one).
	CPUSlots int
	// CPUNice is the niceness (1 to 19) of the threads that hash bodies of
	// a MiB or more, so hashing yields the cores to fetches and to
	// anything else on the machine (default DefaultCPUNice; -1: the
	// worker's own). Linux only.
	CPUNice int
	// Processors are the CPU steps a batch's "process" can name besides
	// sha256 (nil: process.Builtins()).
	Processors map[string]process.Processor
	// FetchRate and CPURate cap activities started per second by this
	// worker; FetchQueueRate and CPUQueueRate cap them across every worker
	// of the task queue (enforced by the Temporal server). 0: no cap.
	FetchRate, FetchQueueRate float64
	CPURate, CPUQueueRate     float64

	// Store holds bodies between fetch and hash. Both pools must see the
	// same store (one machine, a shared volume, or an object store): a CPU
	// worker refuses chunks fetched into another (see blobstore.ID).
	Store blobstore.Store
	// StoreLocation says where Store is, for messages (the --blob-dir or
	// --blob-url value).
	StoreLocation string
	// HTTPClient is shared by every fetch (default: NewHTTPClient(HTTP)).
	HTTPClient *http.Client
	// HTTP configures the default HTTPClient; its Secrets default to
	// Secrets.
	HTTP activities.ClientConfig
	// Secrets are the fetch worker's, which batches' header values may
	// name (nil: none).
	Secrets activities.Secrets
	// MaxBodyBytes caps one body (default activities.DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// HashBacklog bounds the bytes a batch may have fetched and not yet
	// hashed: above it, the batch starts no new fetch (default
	// activities.DefaultBacklog).
	HashBacklog int64
	// StopTimeout is how long running activities get to finish on shutdown
	// (default 10s).
	StopTimeout time.Duration
	// Observer hears what the activities do (metrics). Optional.
	Observer activities.Observer
	// Deployment is the Worker Deployment version the pools join
	// (default: DeploymentName, this binary's build ID, made current
	// when the deployment never had a current version).
	Deployment Deployment
	// OnDeployment, when set, hears what was done about the version
	// being current (for the log).
	OnDeployment func(version, what string, err error)

	// PerHost is the fetch worker's default per-host rule: every batch's
	// requests to one host keep to it, the batch's own per_host fields
	// winning over it (zero: no limit but the batch's).
	PerHost politeness.Rule
	// ShareRefresh is how often the fetch worker counts the fetch
	// workers of its task queue, between which per-host rules are
	// shared out (default DefaultShareRefresh).
	ShareRefresh time.Duration
	// Instance tells apart, in their poller identities, the fetch pools
	// one process runs on one task queue (default: none).
	Instance string
}

func (c Config) withDefaults() (Config, error) {
	if c.Role == "" {
		c.Role = RoleAll
	}
	if c.Role != RoleFetch && c.Role != RoleCPU && c.Role != RoleAll {
		return c, fmt.Errorf("role %q: want fetch, cpu or all", c.Role)
	}
	if c.TaskQueue == "" {
		c.TaskQueue = workflows.TaskQueue
	}
	if c.CPUTaskQueue == "" {
		c.CPUTaskQueue = workflows.CPUTaskQueue
	}
	if c.FetchSlots == 0 {
		c.FetchSlots = DefaultFetchSlots
	}
	if c.CPUNice == 0 {
		c.CPUNice = DefaultCPUNice
	}
	if c.CPUNice > 19 {
		return c, fmt.Errorf("cpu niceness %d is over 19", c.CPUNice)
	}
	if c.CPUSlots == 0 {
		c.CPUSlots = DefaultCPUSlots()
	}
	if c.FetchSlots < 0 || c.CPUSlots < 0 {
		return c, fmt.Errorf("slots must be positive (fetch %d, cpu %d)", c.FetchSlots, c.CPUSlots)
	}
	for _, r := range []float64{c.FetchRate, c.FetchQueueRate, c.CPURate, c.CPUQueueRate} {
		if r < 0 {
			return c, fmt.Errorf("rates must not be negative, got %g", r)
		}
	}
	if c.HashBacklog < 0 {
		return c, fmt.Errorf("hash backlog %d is negative", c.HashBacklog)
	}
	if c.Store == nil {
		return c, fmt.Errorf("no blob store configured")
	}
	if c.HTTP.MaxConnsPerHost == 0 {
		// A batch to one host may use every fetch slot: a lower per-host
		// cap is a politeness choice, made with --max-conns-per-host.
		c.HTTP.MaxConnsPerHost = c.FetchSlots
	}
	if c.HTTP.Secrets == nil {
		c.HTTP.Secrets = c.Secrets // the proxy's secret (HTTP.ProxySecret)
	}
	if c.HTTPClient == nil {
		hc, err := activities.NewHTTPClient(c.HTTP)
		if err != nil {
			return c, err
		}
		c.HTTPClient = hc
	}
	if d, ok := c.Store.(*blobstore.Dir); ok && c.StoreLocation == "" {
		c.StoreLocation = d.Root
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.ShareRefresh <= 0 {
		c.ShareRefresh = DefaultShareRefresh
	}
	if c.PerHost.MaxInFlight < 0 || c.PerHost.Rate < 0 {
		return c, fmt.Errorf("per-host rule %s: must not be negative", c.PerHost)
	}
	c.Deployment = c.Deployment.withDefaults()
	switch c.Deployment.MakeCurrent {
	case MakeCurrentFirst, MakeCurrentNever, MakeCurrentAlways:
	default:
		return c, fmt.Errorf("make current %q: want %s, %s or %s", c.Deployment.MakeCurrent, MakeCurrentFirst, MakeCurrentNever, MakeCurrentAlways)
	}
	return c, nil
}

// DefaultFetchSlots is a fetch worker's requests open at once unless
// configured: the largest max_in_flight a batch may ask for, so one worker
// with its defaults runs any batch as asked. Slots are sized for I/O: a
// request waiting on the network costs memory, not CPU.
const DefaultFetchSlots = workflows.MaxInFlightLimit

// DefaultCPUNice is the niceness of hashing threads (cpuworker.DefaultNice).
const DefaultCPUNice = cpuworker.DefaultNice

// DefaultCPUSlots is one less than the number of CPUs (at least one): a
// core stays free for the I/O side (HTTP, the Temporal client, workflow
// tasks), so hashing cannot starve small fetches. Measured on 2 cores
// (go run ./bench): fetch p99 under full hashing load is 0.8 to 1.6 times
// the unloaded p99 with 1 slot (about 1.1 typically), 1.7 to 2.4 with 2.
func DefaultCPUSlots() int { return cpuworker.DefaultSlots() }

// Pools are running workers; Stop them to shut down gracefully.
type Pools struct {
	workers []worker.Worker
	client  *http.Client
	stop    sync.Once
	cancel  context.CancelFunc // ends promote and the share count
	limits  *politeness.HostLimits
}

// Start starts the pools of cfg.Role on c.
func Start(c client.Client, cfg Config) (*Pools, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pools{client: cfg.HTTPClient, cancel: cancel}
	// The store's identity goes with every fetched chunk: a CPU worker on
	// another store refuses it (and one on the right store takes it).
	storeID, err := blobstore.ID(context.Background(), cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", cfg.StoreLocation, err)
	}
	if cfg.Role == RoleFetch || cfg.Role == RoleAll {
		identity := fetchIdentity(cfg.FetchSlots, cfg.Instance, storeID, cfg.StoreLocation)
		w := worker.New(c, cfg.TaskQueue, worker.Options{
			Identity:                           identity,
			MaxConcurrentActivityExecutionSize: cfg.FetchSlots,
			MaxConcurrentActivityTaskPollers:   min(max(cfg.FetchSlots/10, 2), 8),
			WorkerActivitiesPerSecond:          cfg.FetchRate,
			TaskQueueActivitiesPerSecond:       cfg.FetchQueueRate,
			// Deliver cancellation within about a second.
			MaxHeartbeatThrottleInterval: time.Second,
			WorkerStopTimeout:            cfg.StopTimeout,
			DeploymentOptions:            cfg.Deployment.options(),
		})
		// Both AutoUpgrade (see Deployment.options).
		w.RegisterWorkflowWithOptions(workflows.BatchFetch, workflow.RegisterOptions{Name: workflows.WorkflowName, VersioningBehavior: cfg.Deployment.behavior()})
		w.RegisterWorkflowWithOptions(workflows.BatchFetchPart, workflow.RegisterOptions{Name: workflows.PartWorkflowName, VersioningBehavior: cfg.Deployment.behavior()})
		share := &pollerShare{c: c, queue: cfg.TaskQueue, every: cfg.ShareRefresh, self: identity, members: newMembers(cfg.Store, cfg.TaskQueue, identity)}
		go share.run(ctx, cfg.ShareRefresh)
		// The store every fetch worker shares holds max_in_flight when
		// there are several workers and it is small, and tells which workers a host's rate
		// holds back (they divide it) when it can list.
		p.limits = politeness.New(politeness.Config{Share: share, Store: cfg.Store, Holder: identity, Presence: politeness.NewPresence(cfg.Store, identity)})
		if t, ok := cfg.Observer.(activities.HostsTracker); ok {
			t.TrackHosts(p.limits.Hosts)
		}
		f := &activities.Fetcher{Client: cfg.HTTPClient, Store: cfg.Store, StoreID: storeID, StoreLocation: cfg.StoreLocation, MaxBodyBytes: cfg.MaxBodyBytes, MaxConcurrent: cfg.FetchSlots, Backlog: cfg.HashBacklog, Identity: identity, Observer: cfg.Observer, Secrets: cfg.Secrets,
			Limits: p.limits, PerHost: cfg.PerHost}
		activities.RegisterFetcher(w, f)
		p.workers = append(p.workers, w)
	}
	if cfg.Role == RoleCPU || cfg.Role == RoleAll {
		w, err := cpuworker.New(c, cpuworker.Options{TaskQueue: cfg.CPUTaskQueue, Store: cfg.Store, StoreLocation: cfg.StoreLocation,
			Slots: cfg.CPUSlots, Nice: cfg.CPUNice, Processors: cfg.Processors, Rate: cfg.CPURate, QueueRate: cfg.CPUQueueRate,
			StopTimeout: cfg.StopTimeout, Observer: cfg.Observer, Deployment: cfg.Deployment.options()})
		if err != nil {
			return nil, err
		}
		p.workers = append(p.workers, w)
	}
	for i, w := range p.workers {
		if err := w.Start(); err != nil {
			cancel()
			for _, started := range p.workers[:i] {
				started.Stop()
			}
			return nil, fmt.Errorf("starting worker: %w", err)
		}
	}
	p.promote(ctx, c, cfg)
	return p, nil
}

// HostShare is the number of fetch workers this one shares per-host
// rules with, itself included, as last counted (0 for a CPU pool).
func (p *Pools) HostShare() int {
	if p.limits == nil {
		return 0
	}
	return p.limits.Share()
}

// promote makes the pools' version current in the background, as
// cfg.Deployment.MakeCurrent says; Stop ends it (ctx).
func (p *Pools) promote(ctx context.Context, c client.Client, cfg Config) {
	d := cfg.Deployment
	go func() {
		note := func(what string) {
			if cfg.OnDeployment != nil {
				cfg.OnDeployment(d.Name+"/"+d.BuildID, what, nil)
			}
		}
		what, err := makeCurrent(ctx, c, d, []string{cfg.TaskQueue, cfg.CPUTaskQueue}, note)
		if cfg.OnDeployment != nil && ctx.Err() == nil {
			cfg.OnDeployment(d.Name+"/"+d.BuildID, what, err)
		}
	}()
}

// Stop stops polling, lets running activities finish (up to StopTimeout)
// and releases the HTTP connection pool. A second Stop does nothing.
func (p *Pools) Stop() {
	p.stop.Do(func() {
		if p.cancel != nil {
			p.cancel()
		}
		for _, w := range p.workers {
			w.Stop()
		}
		p.client.CloseIdleConnections()
	})
}

// Run starts the pools and stops them when ctx is done.
func Run(ctx context.Context, c client.Client, cfg Config) error {
	p, err := Start(c, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	p.Stop()
	return nil
}
