package activities

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/politeness"
)

// hostCounts is a HostObserver that counts what it hears.
type hostCounts struct {
	nopObserver
	mu       sync.Mutex
	requests map[string]int
	waits    map[string]int
}

func (o *hostCounts) HostRequest(class string) { o.mu.Lock(); o.requests[class]++; o.mu.Unlock() }
func (o *hostCounts) HostWait(reason string)   { o.mu.Lock(); o.waits[reason]++; o.mu.Unlock() }

// TestChunkHeartbeatNamesTheHostItsURLsWaitFor: a chunk of 6 URLs of a
// host held to 2/s and 3 of another says, while it runs, that URLs wait
// for the first host and why (in its hosts and in its summary line); its
// result counts the times each URL was held back and every request (the
// other host's too: the rule holds for each host).
func TestChunkHeartbeatNamesTheHostItsURLsWaitFor(t *testing.T) {
	paced, other := newPacedHost(t, 41), newPacedHost(t, 42)
	env, f := newPerHostEnv(t, 1)
	f.HeartbeatEvery = 20 * time.Millisecond
	obs := &hostCounts{requests: map[string]int{}, waits: map[string]int{}}
	f.Observer = obs
	waiting := make(chan FetchCheckpoint, 1)
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var cp FetchCheckpoint
		if d.Get(&cp) != nil {
			return
		}
		for _, h := range cp.Hosts {
			if h.Host == "127.0.1.41" && h.Waiting > 0 {
				select {
				case waiting <- cp:
				default:
				}
			}
		}
	})
	var tasks []URLTask
	for i := range 6 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", paced.URL, i)})
	}
	for i := range 3 {
		tasks = append(tasks, URLTask{Index: 6 + i, URL: fmt.Sprintf("%s/q/%d", other.URL, i)})
	}
	v, err := env.ExecuteActivity(f.FetchChunk, FetchChunkRequest{Prefix: "b", URLs: tasks, Concurrency: 4,
		Policy: Policy{AttemptTimeout: 10 * time.Second, MaxAttempts: 1, PerHost: &politeness.Rule{Rate: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var out FetchChunkResult
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	var cp FetchCheckpoint
	select {
	case cp = <-waiting:
	default:
		t.Fatal("no heartbeat said that URLs wait for 127.0.1.41")
	}
	var h HostView
	for _, x := range cp.Hosts {
		if x.Host == "127.0.1.41" {
			h = x
		}
	}
	if h.Reason != politeness.ReasonRate || h.Rate != "2/s" || h.Waiting > 5 {
		t.Errorf("the heartbeat's 127.0.1.41: %+v, want up to 5 URLs waiting for its rate 2/s", h)
	}
	if !strings.Contains(cp.Summary, "for their host: 127.0.1.41 (rate 2/s)") {
		t.Errorf("the heartbeat's summary %q does not say that URLs wait for 127.0.1.41 (rate 2/s)", cp.Summary)
	}
	got := map[string]HostView{}
	for _, x := range out.Hosts {
		got[x.Host] = x
	}
	if p := got["127.0.1.41"]; p.Waited != 5 || p.Requests != 6 || p.Reason != politeness.ReasonRate {
		t.Errorf("the result's 127.0.1.41: %+v, want 5 URLs held back for its rate and 6 requests", p)
	}
	if q := got["127.0.1.42"]; q.Requests != 3 || q.Waited != 2 {
		t.Errorf("the result's 127.0.1.42: %+v, want 3 requests, 2 held back (the rule is per host)", q)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.requests[HostLimited] != 9 || obs.requests[HostUnlimited] != 0 || obs.waits[politeness.ReasonRate] != 7 {
		t.Errorf("the observer heard requests %v and waits %v, want 9 limited requests and 5+2 waits for the rate", obs.requests, obs.waits)
	}
}

// TestChunkHostSummaryIsBounded: of a chunk's 30 hosts, its heartbeat
// names at most ChunkHosts by requests open and by URLs waiting (the
// busiest and most waited for) and SlowestHosts by time; it stays small.
func TestChunkHostSummaryIsBounded(t *testing.T) {
	limits := politeness.New(politeness.Config{})
	limits.SetRule("b", politeness.Rule{MaxInFlight: 100})
	var tasks []URLTask
	hostOfTask := map[int]string{}
	for k := range 30 {
		for j := 0; j <= k; j++ {
			hostOfTask[len(tasks)] = fmt.Sprintf("h%02d.test", k)
			tasks = append(tasks, URLTask{Index: len(tasks), URL: fmt.Sprintf("http://h%02d.test/%d", k, j)})
		}
	}
	b := newHostBoard(limits, "b", nil, tasks)
	for i := range tasks {
		b.refusedAt(hostOfTask[i], i)
	}
	for k := range 30 {
		host := fmt.Sprintf("h%02d.test", k)
		for j := 0; j < 30-k; j++ {
			b.request(host) // open: h00 has the most
		}
		b.request(host)() // one ended each
	}
	hosts := b.summary(func(int) bool { return false })
	if len(hosts) > 2*ChunkHosts+SlowestHosts {
		t.Fatalf("%d hosts in the summary, want at most %d", len(hosts), 2*ChunkHosts+SlowestHosts)
	}
	v := TopHosts(hosts, ChunkHosts, SlowestHosts)
	var busy, waiting []string
	for _, h := range v.InFlight {
		busy = append(busy, fmt.Sprintf("%s:%d", h.Host, h.InFlight))
	}
	for _, h := range v.Waiting {
		waiting = append(waiting, fmt.Sprintf("%s:%d", h.Host, h.Waiting))
	}
	if got, want := strings.Join(busy, " "), "h00.test:30 h01.test:29 h02.test:28 h03.test:27 h04.test:26"; got != want {
		t.Errorf("by requests open: %s, want %s", got, want)
	}
	if got, want := strings.Join(waiting, " "), "h29.test:30 h28.test:29 h27.test:28 h26.test:27 h25.test:26"; got != want {
		t.Errorf("by URLs waiting: %s, want %s", got, want)
	}
	if len(v.Slowest) != SlowestHosts {
		t.Errorf("%d slowest hosts, want %d", len(v.Slowest), SlowestHosts)
	}
	enc, _ := json.Marshal(hosts)
	t.Logf("the summary of 30 hosts: %d bytes", len(enc))
	if len(enc) > 2048 {
		t.Errorf("the summary takes %d bytes, want at most 2 KiB: %s", len(enc), enc)
	}
}

// WaitLine names the hosts URLs wait for now, with why; a paused host
// says until when.
func TestWaitLineSaysWhyURLsWait(t *testing.T) {
	until := time.Date(2026, 1, 1, 12, 4, 5, 0, time.UTC).UnixMilli()
	v := TopHosts([]HostView{
		{Host: "example.com", Waiting: 2, Reason: politeness.ReasonPaused, Until: until},
		{Host: "api.x", Waiting: 1, Reason: politeness.ReasonRate, Rate: "2/s"},
		{Host: "busy.x", InFlight: 3},
	}, ProgressHosts, SlowestHosts)
	want := "3 URLs wait for their host: example.com (paused by Retry-After until 12:04:05), api.x (rate 2/s)"
	if got := WaitLine(v, 3); got != want {
		t.Errorf("WaitLine:\n%q\nwant\n%q", got, want)
	}
	if got := WaitLine(TopHosts([]HostView{{Host: "busy.x", InFlight: 3}}, 5, 3), 3); got != "" {
		t.Errorf("no URL waits: %q, want nothing", got)
	}
}
