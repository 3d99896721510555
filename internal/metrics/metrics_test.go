package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/metrics"
	"github.com/batchfetch/batchfetch/internal/promtext"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestMetricsAfterABatch runs a batch of known composition and checks that
// each counter moved by what the batch did.
func TestMetricsAfterABatch(t *testing.T) {
	m := metrics.New("")
	defer m.Close()
	stack, err := devstack.Start(context.Background(), devstack.Config{MetricsHandler: m.SDKHandler(), Workers: workers.Config{Observer: m}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	c := stack.Client
	bodies := map[string]int{"/a": 1000, "/b": 20000, "/c": 300000}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("x", n))
	}))
	defer site.Close()
	metricsSrv := httptest.NewServer(m.Handler())
	defer metricsSrv.Close()

	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/a", site.URL + "/b", site.URL + "/c", site.URL + "/missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	total := float64(1000 + 20000 + 300000)
	want := map[string]float64{
		`batchfetch_urls_total{outcome="ok"}`:         3,
		`batchfetch_urls_total{outcome="http_error"}`: 1,
		`batchfetch_fetch_bytes_total`:                total,
		`batchfetch_hash_bytes_total`:                 total,
		`batchfetch_fetch_duration_seconds_count`:     4, // the 404 too
		`batchfetch_hash_duration_seconds_count`:      3,
		`batchfetch_slots_in_use{pool="fetch"}`:       0,
		`batchfetch_slots_in_use{pool="cpu"}`:         0,
		`batchfetch_fetch_held_bytes`:                 0, // every fetch handed its bodies over
	}
	got := promtext.Scrape(t, metricsSrv.URL)
	if _, ok := got[`batchfetch_fetch_held_bytes`]; !ok {
		t.Error("no batchfetch_fetch_held_bytes")
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	// The SDK's own metrics are reported every second.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got = promtext.Scrape(t, metricsSrv.URL)
		completed := 0.0
		for k, v := range got {
			if strings.HasPrefix(k, "temporal_workflow_completed_total{") && strings.Contains(k, `workflow_type="BatchFetch"`) {
				completed += v
			}
		}
		if completed >= 1 {
			break
		}
		if time.Now().After(deadline) {
			var names []string
			for k := range got {
				if strings.HasPrefix(k, "temporal_workflow_completed") {
					names = append(names, k)
				}
			}
			t.Fatalf("no SDK workflow-completed metric after 15s; saw %v", names)
		}
		time.Sleep(200 * time.Millisecond) // the SDK's reporter flushes every second
	}
}

// TestMetricsOfSplitRoles runs a fetch-only and a CPU-only worker, each
// with its own registry and client, on a batch of known composition: each
// exports only the metrics it can move, every URL is counted once by the
// worker that decided it, and the SDK's task_queue label has the queue's
// real name.
func TestMetricsOfSplitRoles(t *testing.T) {
	stack, err := devstack.Start(context.Background(), devstack.Config{NoWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	store := stack.Store
	roles := map[string]*metrics.Metrics{}
	for _, role := range []string{workers.RoleFetch, workers.RoleCPU} {
		m := metrics.New(role)
		defer m.Close()
		c, err := client.Dial(client.Options{HostPort: stack.FrontendAddress(), Logger: logging.SDK(zap.NewNop()), MetricsHandler: m.SDKHandler()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pools, err := workers.Start(c, workers.Config{Role: role, Store: store, Observer: m,
			HTTP: activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		defer pools.Stop()
		roles[role] = m
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
	}))
	defer site.Close()
	c, err := client.Dial(client.Options{HostPort: stack.FrontendAddress(), Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/a", site.URL + "/b", site.URL + "/missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	fetchSrv := httptest.NewServer(roles[workers.RoleFetch].Handler())
	defer fetchSrv.Close()
	cpuSrv := httptest.NewServer(roles[workers.RoleCPU].Handler())
	defer cpuSrv.Close()
	fetch, cpu := promtext.Scrape(t, fetchSrv.URL), promtext.Scrape(t, cpuSrv.URL)
	for k, v := range map[string]float64{
		`batchfetch_urls_total{outcome="http_error"}`: 1, // decided by the fetch
		`batchfetch_fetch_bytes_total`:                2000,
		`batchfetch_fetch_duration_seconds_count`:     3,
	} {
		if fetch[k] != v {
			t.Errorf("fetch worker: %s = %v, want %v", k, fetch[k], v)
		}
	}
	for k, v := range map[string]float64{
		`batchfetch_urls_total{outcome="ok"}`:    2, // decided by the hash
		`batchfetch_hash_bytes_total`:            2000,
		`batchfetch_hash_duration_seconds_count`: 2,
	} {
		if cpu[k] != v {
			t.Errorf("cpu worker: %s = %v, want %v", k, cpu[k], v)
		}
	}
	for k := range fetch {
		if strings.HasPrefix(k, "batchfetch_hash_") || k == `batchfetch_urls_total{outcome="ok"}` {
			t.Errorf("the fetch worker exports %s, which it cannot move", k)
		}
	}
	for k := range cpu {
		if strings.HasPrefix(k, "batchfetch_fetch_") || k == `batchfetch_urls_total{outcome="http_error"}` {
			t.Errorf("the cpu worker exports %s, which it cannot move", k)
		}
	}
	// The SDK's metrics name the CPU queue as it is (reported every second).
	deadline := time.Now().Add(15 * time.Second)
	for {
		found := false
		for k := range promtext.Scrape(t, cpuSrv.URL) {
			found = found || (strings.HasPrefix(k, "temporal_") && strings.Contains(k, `task_queue="batchfetch-cpu"`))
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no SDK metric of the CPU worker has task_queue=\"batchfetch-cpu\"")
		}
		time.Sleep(200 * time.Millisecond) // the SDK's reporter flushes every second
	}
}

// A worker that has not run anything yet shows its pools' slots at 0, so
// a dashboard lists it (and its job and instance) from the start; it
// shows no pool its role does not have.
func TestIdleWorkerShowsItsPools(t *testing.T) {
	for role, want := range map[string][]string{
		workers.RoleFetch: {"fetch"},
		workers.RoleCPU:   {"cpu"},
		"":                {"fetch", "cpu"},
	} {
		m := metrics.New(role)
		srv := httptest.NewServer(m.Handler())
		got := promtext.Scrape(t, srv.URL)
		srv.Close()
		_ = m.Close()
		shown := 0
		for k := range got {
			if strings.HasPrefix(k, "batchfetch_slots_in_use{") {
				shown++
			}
		}
		if shown != len(want) {
			t.Errorf("role %q: %d pools shown, want %q", role, shown, want)
		}
		for _, pool := range want {
			k := `batchfetch_slots_in_use{pool="` + pool + `"}`
			if v, ok := got[k]; !ok || v != 0 {
				t.Errorf("role %q: %s = %v (shown: %v), want 0", role, k, v, ok)
			}
		}
	}
}
