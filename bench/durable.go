package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// durable runs one batch on the stack and returns its results.
func durable(st *stack, urls []string, inFlight int) ([]workflows.Result, time.Duration, error) {
	results, _, d, err := durableRun(st, urls, inFlight)
	return results, d, err
}

func durableRun(st *stack, urls []string, inFlight int) ([]workflows.Result, client.WorkflowRun, time.Duration, error) {
	ctx := context.Background()
	in := workflows.Input{MaxInFlight: inFlight}
	if len(urls) > workflows.InlineLimit {
		key, err := uploadURLs(ctx, st.store, urls)
		if err != nil {
			return nil, nil, 0, err
		}
		defer st.store.DeletePrefix(ctx, key) //nolint:errcheck
		in.URLsFile = key
	} else {
		in.URLs = urls
	}
	start := time.Now()
	run, err := st.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName, in)
	if err != nil {
		return nil, nil, 0, err
	}
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		return nil, nil, 0, err
	}
	d := time.Since(start)
	if out.Failed > 0 {
		return nil, nil, 0, fmt.Errorf("%d URLs failed", out.Failed)
	}
	var results []workflows.Result
	if err := eachResult(ctx, st.store, out, func(r workflows.Result) { results = append(results, r) }); err != nil {
		return nil, nil, 0, err
	}
	return results, run, d, nil
}

func percentile(ms []int64, p float64) int64 {
	if len(ms) == 0 {
		return 0
	}
	slices.Sort(ms)
	return ms[min(len(ms)-1, int(float64(len(ms))*p))]
}

func fetchLatencies(results []workflows.Result) []int64 {
	var ms []int64
	for _, r := range results {
		ms = append(ms, r.ElapsedMS)
	}
	return ms
}

// prefetched starts a batch of large bodies whose CPU queue has no worker,
// waits until every body is fetched and waiting to be hashed, then starts
// a CPU pool (of the stack's size) on that queue: what follows is hashing
// alone, not hashing beside downloads.
func prefetched(st *stack, urls []string, queue string) (client.WorkflowRun, func(), error) {
	run, err := st.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, AttemptTimeout: "10m", CPUTaskQueue: queue, MaxInFlight: len(urls)})
	if err != nil {
		return nil, nil, err
	}
	if err := waitPending(st, run, "HashChunk", len(urls)); err != nil {
		return nil, nil, err
	}
	if st.worker != nil {
		// A CPU worker as users run one: the worker binary, --role cpu,
		// its default flags.
		args := append([]string{"--role", "cpu", "--cpu-task-queue", queue}, st.workerArgs...)
		cmd := exec.Command(st.worker.Path, args...)
		cmd.Env = st.worker.Env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		return run, func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }, nil
	}
	cfg := st.cfg
	cfg.Role, cfg.CPUTaskQueue = workers.RoleCPU, queue
	pool, err := st.StartWorkers(cfg)
	if err != nil {
		return nil, nil, err
	}
	return run, pool.Stop, nil
}

// waitPending waits until run has n pending activities of type name.
func waitPending(st *stack, run client.WorkflowRun, name string, n int) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		d, err := st.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			return err
		}
		waiting := 0
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityType().GetName() == name {
				waiting++
			}
		}
		if waiting == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d %s activities pending after 10 minutes", waiting, n, name)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's view
	}
}

// hashing says whether a hash activity of run is running.
func hashing(st *stack, run client.WorkflowRun) bool {
	d, err := st.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	if err != nil {
		return false
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() == "HashChunk" && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return true
		}
	}
	return false
}
