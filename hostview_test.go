package batchfetch_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/metrics"
	"github.com/batchfetch/batchfetch/internal/promtext"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestProgressNamesTheHostURLsWaitFor: a batch with per_host {rate: "2/s"}
// on one host shows, while it runs, that host in the progress query's
// hosts (its URLs held back for its rate) and in the Web UI's current
// details; the fetch worker's metrics count its requests as limited, its
// waits for the rate, and the host it keeps.
func TestProgressNamesTheHostURLsWaitFor(t *testing.T) {
	const queue = "e2e-host-view"
	paced := newCountingHost(t, 33, 0)
	m := metrics.New("fetch")
	defer m.Close()
	pools, err := env.stack.StartWorkers(workers.Config{HTTP: activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}},
		Role: workers.RoleFetch, TaskQueue: queue, Store: env.store, Instance: "hostview", Observer: m})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Stop()
	metricsSrv := httptest.NewServer(m.Handler())
	defer metricsSrv.Close()
	var urls []string
	for i := range 12 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", paced.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{Rate: "2/s"}})
	if err != nil {
		t.Fatal(err)
	}
	const host = "127.0.1.33"
	// Polling the query, as the starter does, until it names the host.
	var p workflows.Progress
	var seen *activities.HostView
	for deadline := time.Now().Add(time.Minute); seen == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the progress query never named %s: %+v", host, p)
		}
		v, err := env.client.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), workflows.ProgressQuery)
		if err != nil || v.Get(&p) != nil || p.Hosts == nil {
			continue
		}
		for _, h := range p.Hosts.Waiting {
			if h.Host == host && h.Waited > 0 {
				seen = &h
			}
		}
	}
	if p.Done >= p.Total {
		t.Errorf("the query named the host only once the batch was done: %+v", p)
	}
	if seen.Reason != "rate" || seen.Rate != "2/s" {
		t.Errorf("the progress query's %s: %+v, want URLs held back for its rate 2/s", host, *seen)
	}
	details := currentDetails(t, env.client, run.GetID())
	if want := fmt.Sprintf("URLs waited for their host: `%s`", host); !strings.Contains(details, want) || !strings.Contains(details, "(rate 2/s)") {
		t.Errorf("the current details:\n%s\nsay nothing of %s (rate 2/s)", details, want)
	}
	out, err := result(t, run)
	if err != nil || out.OK != 12 {
		t.Fatalf("the batch: %+v, %v; want 12 ok", out, err)
	}
	times, _ := paced.record()
	got := promtext.Scrape(t, metricsSrv.URL)
	t.Logf("%d requests in %s; metrics: limited %v, unlimited %v, waits for the rate %v, hosts tracked %v", len(times), times[len(times)-1].Sub(times[0]),
		got[`batchfetch_host_requests_total{class="limited"}`], got[`batchfetch_host_requests_total{class="unlimited"}`],
		got[`batchfetch_host_waits_total{reason="rate"}`], got[`batchfetch_hosts_tracked`])
	if got[`batchfetch_host_requests_total{class="limited"}`] != 12 || got[`batchfetch_host_requests_total{class="unlimited"}`] != 0 {
		t.Errorf("requests by host class: %v limited, %v unlimited, want 12 and 0", got[`batchfetch_host_requests_total{class="limited"}`], got[`batchfetch_host_requests_total{class="unlimited"}`])
	}
	if n := got[`batchfetch_host_waits_total{reason="rate"}`]; n < 1 || n > 11 {
		t.Errorf("%v waits for the rate, want between 1 and 11 (12 URLs at 2/s)", n)
	}
	if n := got[`batchfetch_hosts_tracked`]; n != 1 {
		t.Errorf("%v hosts tracked, want the batch's one", n)
	}
}
