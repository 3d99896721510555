package batchfetch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestPerHostRateHeldByBoundWorkers: three fetch workers serve a batch of
// 40 URLs of one host with per_host {rate: "10/s"}. The workers divide
// the rate between those that have URLs of the host waiting (records in
// the shared blob store), not between all three: the host never sees
// more than 10 requests in any second, and the burst of one request per
// worker; the 40 from a file are one chunk, on one worker, which then
// takes the whole rate. The drain time, ideally 4 s, is logged.
func TestPerHostRateHeldByBoundWorkers(t *testing.T) {
	const queue, rate, burst = "e2e-per-host-presence", 10, 3
	http := activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}}
	var pools []*workers.Pools
	for _, name := range []string{"a", "b", "c"} {
		p, err := env.stack.StartWorkers(workers.Config{HTTP: http, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store,
			Instance: name, ShareRefresh: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		pools = append(pools, p)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		all := true
		for _, p := range pools {
			all = all && p.HostShare() == len(pools)
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workers do not all count %d fetch workers", len(pools))
		}
	}
	// Inline, each URL is a chunk of its own, spread over the workers;
	// from a file, the 40 are one chunk: one worker holds them all.
	for _, from := range []string{"inline", "file"} {
		t.Run(from, func(t *testing.T) {
			host := newCountingHost(t, 33, 0)
			var urls []string
			for i := range 40 {
				urls = append(urls, fmt.Sprintf("%s/page/%d", host.URL, i))
			}
			in := workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{Rate: fmt.Sprintf("%d/s", rate)}}
			if from == "file" {
				in.URLs, in.URLsFile = nil, "inputs/presence.txt"
				w, err := env.store.Create(context.Background(), in.URLsFile)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintln(w, strings.Join(urls, "\n"))
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				defer env.store.Remove(context.Background(), in.URLsFile) //nolint:errcheck
			}
			run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName, in)
			if err != nil {
				t.Fatal(err)
			}
			out, err := result(t, run)
			if err != nil {
				t.Fatal(err)
			}
			if out.OK != len(urls) {
				t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
			}
			times, _ := host.record()
			if len(times) != len(urls) {
				t.Errorf("the host saw %d requests, want %d", len(times), len(urls))
			}
			if n := mostInSecond(times); n > rate+burst {
				t.Errorf("%d requests in one second, want at most %d and a burst of %d", n, rate, burst)
			}
			if len(times) > 0 {
				t.Logf("%d requests, at most %d in a second, drained in %s (ideal %s)", len(times), mostInSecond(times),
					times[len(times)-1].Sub(times[0]).Round(time.Millisecond), time.Duration(len(urls))*time.Second/rate)
			}
			assertNoBlobs(t, run)
		})
	}
}
