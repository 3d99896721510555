// Package cpuworker builds the CPU worker of batchfetch: the Temporal
// worker that serves the CPU task queue (batchfetch-cpu), hashing each
// fetched body and running the batch's CPU step on it. The worker binary
// (--role cpu) is built with it; so is a team's own CPU worker with
// processors of its own:
//
//	procs := process.Builtins()
//	procs["wordcount"] = process.Func(countWords)
//	w, err := cpuworker.New(c, cpuworker.Options{Store: store, Processors: procs})
//	...
//	err = w.Run(worker.InterruptCh())
//
// Every CPU worker of a task queue should offer the same processors: a
// chunk goes to whichever worker polls first.
package cpuworker

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/process"
	"github.com/batchfetch/batchfetch/workflows"
)

// Options configure a CPU worker. Store is required.
type Options struct {
	// TaskQueue is the CPU task queue (default "batchfetch-cpu").
	TaskQueue string
	// Store holds the fetched bodies: the fetch workers' blob store.
	Store blobstore.Store
	// StoreLocation says where Store is, for messages (a directory or URL).
	StoreLocation string
	// Slots is how many bodies are processed at once (default: the
	// number of CPUs less one, at least one).
	Slots int
	// Nice is the niceness of the threads that hash bodies of a MiB or
	// more (default DefaultNice; -1: the process's own). Linux only.
	Nice int
	// Processors are the CPU steps a batch's "process" can name besides
	// sha256 (nil: process.Builtins()).
	Processors map[string]process.Processor
	// Rate and QueueRate cap activities started per second by this worker
	// and across the task queue (0: no cap).
	Rate, QueueRate float64
	// StopTimeout is how long running activities get to finish on
	// shutdown (default 10s).
	StopTimeout time.Duration
	// Observer hears of every hash (metrics). Optional.
	Observer activities.Observer
	// Deployment is the Worker Deployment version this worker joins: the
	// one of the fetch workers of its release (Versioned(buildID)), so a
	// batch's hashes go to CPU workers of the build that runs it. Zero:
	// unversioned.
	Deployment worker.DeploymentOptions
}

// DeploymentName is the Worker Deployment batchfetch's workers join.
const DeploymentName = "batchfetch"

// Versioned is the deployment options of a worker of the release with
// this build ID (the fetch workers' --build-id, BATCHFETCH_BUILD_ID).
func Versioned(buildID string) worker.DeploymentOptions {
	return worker.DeploymentOptions{
		UseVersioning: true,
		Version:       worker.WorkerDeploymentVersion{DeploymentName: DeploymentName, BuildID: buildID},
	}
}

// DefaultNice is the niceness of hashing threads: at 10 the Linux
// scheduler gives a thread about a tenth of the share of one at 0 when
// both want a core, and all of it when the core is free.
const DefaultNice = 10

// DefaultSlots is one less than the number of CPUs (at least one): a
// core stays free for the I/O side.
func DefaultSlots() int { return max(1, runtime.NumCPU()-1) }

// chunksPerSlot is how many hash activities a CPU worker has open per
// slot: a chunk of small bodies spends most of its time on reads, its
// results file and round trips to the server, which overlap another
// chunk's hashing; the slots bound the bodies processed at once.
const chunksPerSlot = 4

// New returns a CPU worker on c, not yet started.
func New(c client.Client, o Options) (worker.Worker, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("cpuworker: no blob store")
	}
	if o.TaskQueue == "" {
		o.TaskQueue = workflows.CPUTaskQueue
	}
	if o.Slots == 0 {
		o.Slots = DefaultSlots()
	}
	if o.Slots < 0 {
		return nil, fmt.Errorf("cpuworker: %d slots", o.Slots)
	}
	if o.Nice == 0 {
		o.Nice = DefaultNice
	}
	if o.Nice > 19 {
		return nil, fmt.Errorf("cpuworker: niceness %d is over 19", o.Nice)
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 10 * time.Second
	}
	for name := range o.Processors {
		if err := process.CheckName(name); err != nil || name == process.SHA256 {
			return nil, fmt.Errorf("cpuworker: processor %q: not a name a batch can ask for", name)
		}
	}
	// The store's identity: a chunk fetched into another store is refused.
	id, err := blobstore.ID(context.Background(), o.Store)
	if err != nil {
		return nil, fmt.Errorf("cpuworker: blob store %s: %w", o.StoreLocation, err)
	}
	w := worker.New(c, o.TaskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize: o.Slots * chunksPerSlot,
		MaxConcurrentActivityTaskPollers:   2,
		WorkerActivitiesPerSecond:          o.Rate,
		TaskQueueActivitiesPerSecond:       o.QueueRate,
		MaxHeartbeatThrottleInterval:       time.Second,
		WorkerStopTimeout:                  o.StopTimeout,
		// This worker runs activities only.
		DisableWorkflowWorker: true,
		DeploymentOptions:     o.Deployment,
	})
	w.RegisterActivity(&activities.Hasher{Store: o.Store, StoreID: id, StoreLocation: o.StoreLocation, Observer: o.Observer,
		CPU: make(chan struct{}, o.Slots), Nice: o.Nice, Processors: o.Processors})
	return w, nil
}
