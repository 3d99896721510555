package batchfetch_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestMaxInFlightHoldsOverMoreWorkers: three fetch workers, more than
// the batch's per_host max_in_flight, hold it together in their blob
// store: a slow host never sees more than max_in_flight requests at once,
// every URL is ok, the batch's quick host is not held back by the slow
// one, and no slot record is left once the batch has ended.
func TestMaxInFlightHoldsOverMoreWorkers(t *testing.T) {
	for _, c := range []struct {
		name        string
		maxInFlight int
		slow        int
		octet       int
	}{
		{"max_in_flight 2", 2, 30, 41},
		{"max_in_flight 1", 1, 15, 43},
	} {
		t.Run(c.name, func(t *testing.T) {
			holdsOverWorkers(t, fmt.Sprintf("e2e-slots-%d", c.maxInFlight), c.maxInFlight, c.slow, c.octet)
		})
	}
}

func holdsOverWorkers(t *testing.T, queue string, maxInFlight, nSlow, octet int) {
	slow, quick := newCountingHost(t, octet, 300*time.Millisecond), newCountingHost(t, octet+1, 0)
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
	counted := func() bool {
		for _, p := range pools {
			if p.HostShare() != 3 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !counted(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the workers count %d, %d and %d fetch workers, want 3", pools[0].HostShare(), pools[1].HostShare(), pools[2].HostShare())
		}
	}
	var urls []string
	for i := range nSlow {
		urls = append(urls, fmt.Sprintf("%s/slow/%d", slow.URL, i))
	}
	for i := range 10 {
		urls = append(urls, fmt.Sprintf("%s/quick/%d", quick.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: maxInFlight, Rate: "20/s"}})
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
	slowTimes, slowMost := slow.record()
	quickTimes, quickMost := quick.record()
	t.Logf("slow host: %d requests, at most %d at once; quick host: %d, at most %d at once, last %s after the first request, the slow host's last %s after",
		len(slowTimes), slowMost, len(quickTimes), quickMost, quickTimes[len(quickTimes)-1].Sub(slowTimes[0]), slowTimes[len(slowTimes)-1].Sub(slowTimes[0]))
	if slowMost > maxInFlight {
		t.Errorf("the slow host had %d requests open at once over 3 fetch workers, want at most max_in_flight %d", slowMost, maxInFlight)
	}
	if len(slowTimes) != nSlow || len(quickTimes) != 10 {
		t.Fatalf("%d requests to the slow host and %d to the quick one, want %d and 10", len(slowTimes), len(quickTimes), nSlow)
	}
	if last := slowTimes[len(slowTimes)-1]; !quickTimes[len(quickTimes)-1].Before(last) {
		t.Errorf("the quick host's last URL was asked after the slow host's last: held back by it")
	}
	// The slots went with the batch's other blobs.
	left := filepath.Join(env.store.Root, filepath.FromSlash(workflows.BlobPrefix(run.GetRunID())))
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the batch left %s (%v)", left, err)
	}
}
