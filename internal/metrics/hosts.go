package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/politeness"
)

// hostMetrics are a fetch worker's per-host politeness metrics: requests
// by host class, URLs held back for their host by reason, and the hosts
// its rules keep. No label names a host: their number has no bound.
type hostMetrics struct {
	requests *prometheus.CounterVec
	waits    *prometheus.CounterVec

	mu      sync.Mutex
	tracked []func() int
}

func newHostMetrics(reg *prometheus.Registry) *hostMetrics {
	h := &hostMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchfetch_host_requests_total", Help: "Requests made, by host class: limited (a per_host rule paces the host) or unlimited (none does).",
		}, []string{"class"}),
		waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchfetch_host_waits_total", Help: "Times a URL was held back for its host under a per_host rule (once a turn), by reason: rate, in_flight, paused (a Retry-After) or crawl_delay.",
		}, []string{"reason"}),
	}
	// Every label value at 0 from the start, so rate() sees the first.
	for _, c := range []string{activities.HostLimited, activities.HostUnlimited} {
		h.requests.WithLabelValues(c)
	}
	for _, r := range []string{politeness.ReasonRate, politeness.ReasonInFlight, politeness.ReasonPaused, politeness.ReasonCrawlDelay} {
		h.waits.WithLabelValues(r)
	}
	reg.MustRegister(h.requests, h.waits)
	return h
}

// HostRequest implements activities.HostObserver.
func (m *Metrics) HostRequest(class string) {
	if m.hosts != nil {
		m.hosts.requests.WithLabelValues(class).Inc()
	}
}

// HostWait implements activities.HostObserver.
func (m *Metrics) HostWait(reason string) {
	if m.hosts != nil {
		m.hosts.waits.WithLabelValues(reason).Inc()
	}
}

// TrackHosts adds count, the hosts a fetch worker's per-host rules keep
// now, to the gauge batchfetch_hosts_tracked (registered on the first
// call; the worker's pools call it once each).
func (m *Metrics) TrackHosts(count func() int) {
	if m.hosts == nil {
		return // a CPU worker's registry
	}
	m.hosts.mu.Lock()
	defer m.hosts.mu.Unlock()
	if m.hosts.tracked == nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "batchfetch_hosts_tracked", Help: "(batch, host) pairs this worker's per-host rules keep now (bounded by its politeness limits' MaxHosts).",
		}, m.hostsTracked))
	}
	m.hosts.tracked = append(m.hosts.tracked, count)
}

// hostsTracked adds up the counts TrackHosts was given.
func (m *Metrics) hostsTracked() float64 {
	m.hosts.mu.Lock()
	defer m.hosts.mu.Unlock()
	n := 0
	for _, count := range m.hosts.tracked {
		n += count()
	}
	return float64(n)
}
