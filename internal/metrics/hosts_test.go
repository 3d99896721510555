package metrics_test

import (
	"net/http/httptest"
	"testing"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/metrics"
	"github.com/batchfetch/batchfetch/internal/promtext"
)

// The host metrics count requests by class and waits by reason, with
// every label at 0 from the start, and add up the hosts of each pool's
// rules; a CPU worker has none of them.
func TestHostMetricsCountByClassAndReason(t *testing.T) {
	m := metrics.New("fetch")
	defer m.Close()
	var obs activities.Observer = m
	h, ok := obs.(activities.HostObserver)
	if !ok {
		t.Fatal("Metrics does not hear of hosts")
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	before := promtext.Scrape(t, srv.URL)
	for _, k := range []string{`batchfetch_host_requests_total{class="limited"}`, `batchfetch_host_waits_total{reason="paused"}`} {
		if v, ok := before[k]; !ok || v != 0 {
			t.Errorf("%s = %v (shown: %v) before any request, want 0", k, v, ok)
		}
	}
	h.HostRequest(activities.HostLimited)
	h.HostRequest(activities.HostLimited)
	h.HostRequest(activities.HostUnlimited)
	h.HostWait("crawl_delay")
	m.TrackHosts(func() int { return 3 })
	m.TrackHosts(func() int { return 4 })
	got := promtext.Scrape(t, srv.URL)
	for k, want := range map[string]float64{
		`batchfetch_host_requests_total{class="limited"}`:   2,
		`batchfetch_host_requests_total{class="unlimited"}`: 1,
		`batchfetch_host_waits_total{reason="crawl_delay"}`: 1,
		`batchfetch_host_waits_total{reason="rate"}`:        0,
		`batchfetch_hosts_tracked`:                          7,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	cpu := metrics.New("cpu")
	defer cpu.Close()
	cpu.HostRequest(activities.HostLimited)
	cpu.TrackHosts(func() int { return 1 })
	cpuSrv := httptest.NewServer(cpu.Handler())
	defer cpuSrv.Close()
	for k := range promtext.Scrape(t, cpuSrv.URL) {
		if len(k) > 16 && k[:16] == "batchfetch_host_" {
			t.Errorf("a CPU worker shows %s", k)
		}
	}
}
