package crashtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/promtext"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestWorkerBinariesExportTheirRolesMetrics runs a fetch worker and a CPU
// worker as users do (the worker binary, --role and --metrics-listen) on a
// batch of two pages and a 404, and scrapes each: every URL is counted once,
// by the worker that decided it; each exports only what it can move; the
// SDK's metrics name the CPU queue as it is.
func TestWorkerBinariesExportTheirRolesMetrics(t *testing.T) {
	c := newCluster(t)
	fetchAddr := fmt.Sprintf("127.0.0.1:%d", freeport.Run(t, 1))
	cpuAddr := fmt.Sprintf("127.0.0.1:%d", freeport.Run(t, 1))
	c.fetch.stop()
	c.cpu.stop()
	c.fetch.args = append(c.fetch.args, "--metrics-listen", fetchAddr)
	c.cpu.args = append(c.cpu.args, "--metrics-listen", cpuAddr)
	c.fetch.start()
	c.cpu.start()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
	}))
	defer site.Close()
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/a", site.URL + "/b", site.URL + "/missing"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil || out.OK != 2 {
		t.Fatalf("batch: %v, %+v", err, out)
	}
	fetch, cpu := promtext.Scrape(t, "http://"+fetchAddr+"/metrics"), promtext.Scrape(t, "http://"+cpuAddr+"/metrics")
	for k, v := range map[string]float64{
		`batchfetch_urls_total{outcome="http_error"}`: 1,
		`batchfetch_fetch_bytes_total`:                2000,
		`batchfetch_fetch_duration_seconds_count`:     3,
	} {
		if fetch[k] != v {
			t.Errorf("fetch worker: %s = %v, want %v", k, fetch[k], v)
		}
	}
	for k, v := range map[string]float64{
		`batchfetch_urls_total{outcome="ok"}`:    2,
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
	deadline := time.Now().Add(15 * time.Second)
	for {
		found := false
		for k := range promtext.Scrape(t, "http://"+cpuAddr+"/metrics") {
			found = found || (strings.HasPrefix(k, "temporal_") && strings.Contains(k, `task_queue="batchfetch-cpu"`))
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(`no SDK metric of the CPU worker has task_queue="batchfetch-cpu"`)
		}
		time.Sleep(200 * time.Millisecond) // the SDK's reporter flushes every second
	}
}
