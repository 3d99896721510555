package activities

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/politeness"
)

// HostView is what a batch's URLs met at one host under its per_host
// rule, as a chunk's heartbeat, a chunk's result and the progress query
// say it.
type HostView struct {
	Host string `json:"host"`
	// InFlight are its requests open now.
	InFlight int `json:"in_flight,omitempty"`
	// Waiting are the URLs waiting for the host now (its rule holds them
	// back, while URLs of other hosts go ahead).
	Waiting int `json:"waiting,omitempty"`
	// Waited counts the times a URL was held back for it so far.
	Waited int `json:"waited,omitempty"`
	// Reason is why the last URL held back waited: rate, in_flight,
	// paused (until Until, a Retry-After) or crawl_delay.
	Reason string `json:"reason,omitempty"`
	// Until is when the host's pause ends (Unix ms; Reason paused).
	Until int64 `json:"until,omitempty"`
	// Rate is the rate a worker holds the host to ("2/s"), MaxInFlight
	// its cap of open requests, when they held a URL back.
	Rate        string `json:"rate,omitempty"`
	MaxInFlight int    `json:"max_in_flight,omitempty"`
	// Requests are the requests made to it that have ended, MeanMS their
	// mean time.
	Requests int   `json:"requests,omitempty"`
	MeanMS   int64 `json:"mean_ms,omitempty"`
}

// HostsView are the hosts a batch's URLs wait for or are busy with: the
// top few by requests open, by URLs waiting (then by times held back),
// and by the mean time of their requests.
type HostsView struct {
	InFlight []HostView `json:"in_flight,omitempty"`
	Waiting  []HostView `json:"waiting,omitempty"`
	Slowest  []HostView `json:"slowest,omitempty"`
}

// How many hosts a chunk's heartbeat names in each list, and how many the
// progress query does.
const (
	ChunkHosts    = 5
	ProgressHosts = 10
	SlowestHosts  = 3
)

// maxHostName bounds a host's name as views carry it.
const maxHostName = 100

// Why says in a few words why URLs waited for h: "rate 2/s", "paused by
// Retry-After until 12:04:05" (UTC).
func (h HostView) Why() string {
	switch h.Reason {
	case politeness.ReasonPaused:
		if h.Until == 0 {
			return "paused by Retry-After"
		}
		return "paused by Retry-After until " + time.UnixMilli(h.Until).UTC().Format("15:04:05")
	case politeness.ReasonRate:
		return "rate " + h.Rate
	case politeness.ReasonCrawlDelay:
		return "robots.txt Crawl-delay, rate " + h.Rate
	case politeness.ReasonInFlight:
		return "max_in_flight " + strconv.Itoa(h.MaxInFlight) + " open"
	}
	return h.Reason
}

// All is every host of v once.
func (v *HostsView) All() []HostView {
	if v == nil {
		return nil
	}
	var out []HostView
	seen := map[string]bool{}
	for _, list := range [][]HostView{v.InFlight, v.Waiting, v.Slowest} {
		for _, h := range list {
			if !seen[h.Host] {
				seen[h.Host] = true
				out = append(out, h)
			}
		}
	}
	return out
}

// WaitingNow is the URLs waiting for their host now, over v's hosts.
func (v *HostsView) WaitingNow() int {
	n := 0
	for _, h := range v.All() {
		n += h.Waiting
	}
	return n
}

// MergeHosts adds up what several views say of each host: counts add,
// mean times are weighed by their requests, the reason is that of the
// view where most URLs wait (or were held back).
func MergeHosts(views ...[]HostView) []HostView {
	by := map[string]*HostView{}
	var order []string
	for _, list := range views {
		for _, h := range list {
			m := by[h.Host]
			if m == nil {
				m = &HostView{Host: h.Host}
				by[h.Host] = m
				order = append(order, h.Host)
			}
			if h.Reason != "" && (m.Reason == "" || h.Waiting > m.Waiting || (h.Waiting == m.Waiting && h.Waited >= m.Waited)) {
				m.Reason, m.Rate, m.MaxInFlight = h.Reason, h.Rate, h.MaxInFlight
			}
			m.Until = max(m.Until, h.Until)
			if n := m.Requests + h.Requests; n > 0 {
				m.MeanMS = (m.MeanMS*int64(m.Requests) + h.MeanMS*int64(h.Requests)) / int64(n)
			}
			m.InFlight += h.InFlight
			m.Waiting += h.Waiting
			m.Waited += h.Waited
			m.Requests += h.Requests
		}
	}
	out := make([]HostView, 0, len(order))
	for _, host := range order {
		out = append(out, *by[host])
	}
	return out
}

// TopHosts picks from hosts the n busiest, the n most waited for and the
// slowest few (slow of them), each list best first, ties by name.
func TopHosts(hosts []HostView, n, slow int) *HostsView {
	v := &HostsView{
		InFlight: topBy(hosts, n, func(h HostView) (int64, int64) { return int64(h.InFlight), 0 }),
		Waiting:  topBy(hosts, n, func(h HostView) (int64, int64) { return int64(h.Waiting), int64(h.Waited) }),
		Slowest: topBy(hosts, slow, func(h HostView) (int64, int64) {
			if h.Requests == 0 {
				return 0, 0
			}
			return h.MeanMS + 1, int64(h.Requests) // a mean of 0 ms still ranks
		}),
	}
	if len(v.InFlight) == 0 && len(v.Waiting) == 0 && len(v.Slowest) == 0 {
		return nil
	}
	return v
}

// topBy is the up to n hosts with the largest key (first, then second)
// above zero, largest first, ties by name.
func topBy(hosts []HostView, n int, key func(HostView) (int64, int64)) []HostView {
	var out []HostView
	for _, h := range hosts {
		if a, b := key(h); a > 0 || b > 0 {
			out = append(out, h)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ai, bi := key(out[i])
		aj, bj := key(out[j])
		if ai != aj {
			return ai > aj
		}
		if bi != bj {
			return bi > bj
		}
		return out[i].Host < out[j].Host
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// WaitLine says which hosts URLs wait for now, and why: "3 URLs wait for
// their host: example.com (rate 2/s), api.example (paused by Retry-After
// until 12:04:05)"; "" when none waits. It names at most n hosts.
func WaitLine(v *HostsView, n int) string {
	total := v.WaitingNow()
	if total == 0 {
		return ""
	}
	var names []string
	for _, h := range v.Waiting {
		if h.Waiting > 0 && len(names) < n {
			names = append(names, fmt.Sprintf("%s (%s)", h.Host, h.Why()))
		}
	}
	what := "URLs wait"
	if total == 1 {
		what = "URL waits"
	}
	return fmt.Sprintf("%d %s for their host: %s", total, what, strings.Join(names, ", "))
}
