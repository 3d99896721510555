// Package metrics exposes a worker's Prometheus metrics: the Temporal SDK's
// own (through its tally contrib) and batchfetch's (URLs by outcome, bytes
// fetched and hashed, fetch and hash latency, slots in use), on one
// registry served at /metrics.
package metrics

import (
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// Metrics is a worker's registry; it implements activities.Observer.
type Metrics struct {
	reg       *prometheus.Registry
	closer    io.Closer
	sdk       client.MetricsHandler
	urls      *prometheus.CounterVec
	fetched   prometheus.Counter
	hashed    prometheus.Counter
	fetchTime prometheus.Histogram
	hashTime  prometheus.Histogram
	slots     *prometheus.GaugeVec
	held      prometheus.Gauge
	hosts     *hostMetrics // nil on a CPU worker
}

// sanitize keeps Prometheus's rules for names and keys; label values may
// hold what task queue names and worker identities hold (batchfetch-cpu,
// pid@host).
var sanitize = func() tally.SanitizeOptions {
	o := sdktally.PrometheusSanitizeOptions
	o.ValueCharacters = tally.ValidCharacters{Ranges: tally.AlphanumericRange, Characters: []rune{'_', '-', '.', ':', '/', '@'}}
	return o
}()

// New builds the registry and the SDK's metrics handler on it. role
// (fetch, cpu, or all/empty) says which of batchfetch's metrics the worker
// can move: only those are exported.
func New(role string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	reporter := tallyprom.NewReporter(tallyprom.Options{Registerer: reg, Gatherer: reg, DefaultTimerType: tallyprom.HistogramTimerType})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sanitize,
	}, time.Second)
	m := &Metrics{
		reg:    reg,
		closer: closer,
		sdk:    sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)),
		urls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchfetch_urls_total", Help: "URLs finished, by outcome (ok, not_modified, http_error, timeout, error, canceled, robots_disallowed), each counted once by the worker that decided it: the fetch worker for URLs that end at their fetch, the CPU worker for hashed ones.",
		}, []string{"outcome"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{Name: "batchfetch_fetch_bytes_total", Help: "Bytes of bodies fetched and stored."}),
		hashed:  prometheus.NewCounter(prometheus.CounterOpts{Name: "batchfetch_hash_bytes_total", Help: "Bytes hashed (rate() gives hash bytes/s)."}),
		fetchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "batchfetch_fetch_duration_seconds", Help: "Time to fetch one URL, retries included, whatever its outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}),
		hashTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "batchfetch_hash_duration_seconds", Help: "Time to hash one body.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}),
		slots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "batchfetch_slots_in_use", Help: "Requests open (pool fetch) and hashes running (pool cpu) now.",
		}, []string{"pool"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "batchfetch_fetch_held_bytes", Help: "Bytes of bodies this worker's running chunk fetches have stored and not yet handed to the hash step (at --hash-backlog, they hand them over).",
		}),
	}
	reg.MustRegister(m.urls, m.slots)
	// The pools of the role at 0 from the start: a dashboard lists an idle
	// worker too.
	if role != "cpu" {
		reg.MustRegister(m.fetched, m.fetchTime, m.held)
		m.hosts = newHostMetrics(reg)
		m.slots.WithLabelValues("fetch")
	}
	if role != "fetch" {
		reg.MustRegister(m.hashed, m.hashTime)
		m.slots.WithLabelValues("cpu")
	}
	return m
}

// SDKHandler is the client.Options.MetricsHandler that feeds the registry.
func (m *Metrics) SDKHandler() client.MetricsHandler { return m.sdk }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Close flushes the SDK's metrics.
func (m *Metrics) Close() error { return m.closer.Close() }

// URLDone implements activities.Observer.
func (m *Metrics) URLDone(outcome string) { m.urls.WithLabelValues(outcome).Inc() }

// Fetched implements activities.Observer.
func (m *Metrics) Fetched(bytes int64, d time.Duration) {
	m.fetched.Add(float64(bytes))
	m.fetchTime.Observe(d.Seconds())
}

// Hashed implements activities.Observer.
func (m *Metrics) Hashed(bytes int64, d time.Duration) {
	m.hashed.Add(float64(bytes))
	m.hashTime.Observe(d.Seconds())
}

// Held implements activities.HeldObserver.
func (m *Metrics) Held(delta int64) { m.held.Add(float64(delta)) }

// SlotsInUse implements activities.Observer.
func (m *Metrics) SlotsInUse(pool string, delta int) {
	m.slots.WithLabelValues(pool).Add(float64(delta))
}
