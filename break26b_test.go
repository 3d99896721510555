package batchfetch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestMaxInFlightAtTheThresholdWhenAWorkerJoins: two fetch workers divide
// per_host {max_in_flight: 8} (8 is 4 per worker: not held in the store),
// each keeping 4 of a host's 1 s pages open. A third joins while the
// batch runs: 8 is now under 4 per worker, so the store holds it from the
// others' next count. The requests they opened unheld hold no slot, yet
// count as open: the host should still never see more than 8 at once.
func TestMaxInFlightAtTheThresholdWhenAWorkerJoins(t *testing.T) {
	const queue = "e2e-break26b-threshold"
	host := newEdgeHost(t, 150, time.Second, "")
	started := time.Now()
	a := startFetchWorker(t, queue, "a", workers.DefaultShareRefresh)
	b := startFetchWorker(t, queue, "b", workers.DefaultShareRefresh)
	waitShare(t, 2, a, b)
	// a and b count at 0, 1, 3, 7 s, then 12 s: the batch runs across
	// their 12 s count, c joins just after it starts.
	time.Sleep(time.Until(started.Add(8 * time.Second)))
	var urls []string
	for i := range 90 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 8}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(started.Add(9 * time.Second)))
	c := startFetchWorker(t, queue, "c", workers.DefaultShareRefresh)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
	}
	times, most := host.record()
	t.Logf("a, b, c count %d, %d, %d; %d requests, at most %d at once, over %s", a.HostShare(), b.HostShare(), c.HostShare(),
		len(times), most, times[len(times)-1].Sub(times[0]))
	if most > 8 {
		t.Errorf("the host had %d requests open at once, want max_in_flight 8", most)
	}
}
