package batchfetch_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// edgeHost is a test host on 127.0.1.n whose pages answer after delay and
// whose /robots.txt answers robots (404 when empty); it records when each
// page request came and the most open at once.
type edgeHost struct {
	*httptest.Server
	mu         sync.Mutex
	open, most int
	times      []time.Time
}

func newEdgeHost(t *testing.T, n int, delay time.Duration, robots string) *edgeHost {
	t.Helper()
	h := &edgeHost{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", n))
	if err != nil {
		t.Fatal(err)
	}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			if robots == "" {
				http.NotFound(w, r)
				return
			}
			_, _ = io.WriteString(w, robots)
			return
		}
		h.mu.Lock()
		h.open++
		h.most = max(h.most, h.open)
		h.times = append(h.times, time.Now())
		h.mu.Unlock()
		time.Sleep(delay)
		h.mu.Lock()
		h.open--
		h.mu.Unlock()
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	h.Listener.Close()
	h.Listener = l
	h.Start()
	t.Cleanup(h.Close)
	return h
}

func (h *edgeHost) record() (times []time.Time, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.times...), h.most
}

func startFetchWorker(t *testing.T, queue, name string, refresh time.Duration) *workers.Pools {
	t.Helper()
	http := activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}}
	p, err := env.stack.StartWorkers(workers.Config{HTTP: http, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store,
		Instance: name, ShareRefresh: refresh})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// runAllOK runs the batch in on queue and fails the test unless every
// URL ends ok; it returns the output.
func runAllOK(t *testing.T, queue string, in workflows.Input) workflows.Output {
	t.Helper()
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != len(in.URLs) {
		t.Errorf("%d of %d ok: %+v", out.OK, len(in.URLs), out.Failures)
	}
	return out
}

func waitShare(t *testing.T, want int, pools ...*workers.Pools) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ok := true
		for _, p := range pools {
			ok = ok && p.HostShare() == want
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var got []int
			for _, p := range pools {
				got = append(got, p.HostShare())
			}
			t.Fatalf("the workers count %v fetch workers, want %d each", got, want)
		}
	}
}

// TestMaxInFlightHoldsWhenAWorkerJoins: two fetch workers have run long
// enough to count each other every few seconds only; a third joins, and
// counts all three at once, just before a batch with per_host
// {max_in_flight: 2}. The joining worker holds its requests back until
// the others count it: the host sees at most 2.
func TestMaxInFlightHoldsWhenAWorkerJoins(t *testing.T) {
	const queue = "e2e-edge-join"
	host := newEdgeHost(t, 201, 500*time.Millisecond, "")
	started := time.Now()
	a := startFetchWorker(t, queue, "a", workers.DefaultShareRefresh)
	b := startFetchWorker(t, queue, "b", workers.DefaultShareRefresh)
	waitShare(t, 2, a, b)
	// a and b count at 0, 1, 3 and 7 s after they start, then every 5 s:
	// join after their 7 s count, as a worker joins a deployment that has
	// run a while.
	time.Sleep(time.Until(started.Add(8 * time.Second)))
	c := startFetchWorker(t, queue, "c", workers.DefaultShareRefresh)
	waitShare(t, 3, c)
	t.Logf("a, b and c count %d, %d and %d fetch workers", a.HostShare(), b.HostShare(), c.HostShare())
	var urls []string
	for i := range 30 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	runAllOK(t, queue, workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 2}})
	times, most := host.record()
	t.Logf("%d requests, at most %d at once, over %s", len(times), most, times[len(times)-1].Sub(times[0]))
	if most > 2 {
		t.Errorf("the host had %d requests open at once, want max_in_flight 2 (the worker that joins holds back until the others count it)", most)
	}
}

// TestCrawlDelayHoldsAcrossWorkers: three fetch workers, counted, serve a
// batch with robots "obey" and per_host {rate: "10/s"} of a host whose
// robots.txt says Crawl-delay: 2. The host should see one request per 2 s,
// but for a burst of one per worker.
func TestCrawlDelayHoldsAcrossWorkers(t *testing.T) {
	const queue = "e2e-edge-crawl-delay"
	host := newEdgeHost(t, 202, 0, "User-agent: *\nCrawl-delay: 2\n")
	var pools []*workers.Pools
	for _, n := range []string{"a", "b", "c"} {
		pools = append(pools, startFetchWorker(t, queue, n, 100*time.Millisecond))
	}
	waitShare(t, 3, pools...)
	var urls []string
	for i := range 6 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	obey := "obey"
	runAllOK(t, queue, workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, Robots: obey, PerHost: &workflows.PerHost{Rate: "10/s"}})
	times, _ := host.record()
	var gaps []string
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]).Round(10*time.Millisecond).String())
	}
	mostIn2s := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < 2*time.Second; j++ {
			n++
		}
		mostIn2s = max(mostIn2s, n)
	}
	t.Logf("%d requests, gaps %v, at most %d in 2 s", len(times), gaps, mostIn2s)
	// README: over any window of W seconds at most rate × W plus one
	// request per worker sending to it (each worker's burst of one).
	const workers = 3
	if mostIn2s > 1+workers {
		t.Errorf("the host saw %d requests within 2 s, its robots.txt asks Crawl-delay: 2 (want at most 1 and a burst of one per worker)", mostIn2s)
	}
	if span, least := times[len(times)-1].Sub(times[0]), time.Duration(len(times)-workers)*2*time.Second; span < least {
		t.Errorf("%d requests over %s, want at least %s at one per 2 s (a burst of one per worker aside)", len(times), span, least)
	}
}

// TestHugeRetryAfterIsBoundByURLTimeout: a host answers its first
// request 429 with Retry-After: 99999999; the batch has url_timeout 4s,
// three fetch workers. README: a pause lasts the Retry-After (at most an
// hour); a URL whose host will not take it before its url_timeout "ends
// at once as timeout", naming the host. The told URL ends http_error
// naming the Retry-After, every other one timeout with 0 attempts, no
// other request reaches the host, and the batch ends at once.
func TestHugeRetryAfterIsBoundByURLTimeout(t *testing.T) {
	const queue = "e2e-edge-huge-retry-after"
	var mu sync.Mutex
	var times []time.Time
	l, err := net.Listen("tcp", "127.0.1.203:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		w.Header().Set("Retry-After", "99999999")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	var pools []*workers.Pools
	for _, n := range []string{"a", "b", "c"} {
		pools = append(pools, startFetchWorker(t, queue, n, 100*time.Millisecond))
	}
	waitShare(t, 3, pools...)
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", srv.URL, i))
	}
	begin := time.Now()
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, URLTimeout: "4s", PerHost: &workflows.PerHost{Rate: "2/s"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	mu.Lock()
	asked := len(times)
	mu.Unlock()
	told, waited := 0, 0
	for _, r := range out.Results {
		switch {
		case r.Outcome == "http_error" && r.Status == 429 && strings.Contains(r.Error, "Retry-After"):
			told++
		case r.Outcome == "timeout" && r.Attempts == 0 && strings.Contains(r.Error, "asked to wait until"):
			waited++
		default:
			t.Errorf("%s: %s %d %q (%d attempts), want http_error 429 for the told URLs, timeout for the others", r.URL, r.Outcome, r.Status, r.Error, r.Attempts)
		}
	}
	t.Logf("%d told, %d ended timeout, %d requests, the batch took %s", told, waited, asked, took)
	if told != asked {
		t.Errorf("%d requests reached the host, %d URLs were told: a request came during the pause", asked, told)
	}
	if took > 15*time.Second {
		t.Errorf("the batch took %s: URLs waited for a pause past their url_timeout", took)
	}
}

// TestRateQueueIsNotTheURLTimeout: 30 URLs of one host under per_host
// {rate: "5/s"} (about 6 s for all) with url_timeout 2s. README:
// url_timeout is the "time limit of one URL from its first attempt"; a
// URL ends timeout only when its host will not take it before its
// url_timeout runs out. Every URL should be ok: each one's request,
// once made, is quick.
func TestRateQueueIsNotTheURLTimeout(t *testing.T) {
	const queue = "e2e-edge-rate-queue"
	host := newEdgeHost(t, 246, 0, "")
	startFetchWorker(t, queue, "a", 100*time.Millisecond)
	var urls []string
	for i := range 30 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, URLTimeout: "2s", PerHost: &workflows.PerHost{Rate: "5/s"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	times, _ := host.record()
	t.Logf("%d of %d ok, %d requests; failures %+v", out.OK, len(urls), len(times), out.Failures)
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok under a rate of 5/s and a url_timeout of 2s", out.OK, len(urls))
	}
}

// TestOneHostSpelledThreeWaysIsOneHost: a batch names one host, on
// 127.0.1.204, as 127.0.1.204, [::ffff:127.0.1.204] and
// [::ffff:7f00:1cc] (the fetcher dials the same IPv4 address for all
// three), under per_host {max_in_flight: 1}: the host should never see
// more than one request at once.
func TestOneHostSpelledThreeWaysIsOneHost(t *testing.T) {
	const queue = "e2e-edge-spellings"
	host := newEdgeHost(t, 204, 300*time.Millisecond, "")
	startFetchWorker(t, queue, "a", 100*time.Millisecond)
	_, port, _ := net.SplitHostPort(host.Listener.Addr().String())
	var urls []string
	for i := range 12 {
		name := []string{"127.0.1.204", "[::ffff:127.0.1.204]", "[::ffff:7f00:1cc]"}[i%3]
		urls = append(urls, fmt.Sprintf("http://%s:%s/p/%d", name, port, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	times, most := host.record()
	t.Logf("%d ok of %d, %d requests, at most %d at once; failures %+v", out.OK, len(urls), len(times), most, out.Failures)
	if out.OK != len(urls) {
		t.Fatalf("%d of %d ok", out.OK, len(urls))
	}
	if most > 1 {
		t.Errorf("the host had %d requests open at once, want max_in_flight 1: its three spellings were kept as three hosts", most)
	}
}

// TestPerHostRuleOverManyHosts: three fetch workers, counted, serve 20
// hosts of 15 URLs each (100 ms pages) under per_host {max_in_flight: 2,
// rate: "5/s"}. Every host should see at most 2 requests at once and at
// most 5 in any second, plus a burst of one request per worker (each
// keeps its own share of the rate); every URL ok.
func TestPerHostRuleOverManyHosts(t *testing.T) {
	const queue = "e2e-edge-many-hosts"
	var hosts []*edgeHost
	for n := 210; n < 230; n++ {
		hosts = append(hosts, newEdgeHost(t, n, 100*time.Millisecond, ""))
	}
	var pools []*workers.Pools
	for _, n := range []string{"a", "b", "c"} {
		pools = append(pools, startFetchWorker(t, queue, n, 100*time.Millisecond))
	}
	waitShare(t, 3, pools...)
	var urls []string
	for i := range 15 {
		for _, h := range hosts {
			urls = append(urls, fmt.Sprintf("%s/p/%d", h.URL, i))
		}
	}
	begin := time.Now()
	runAllOK(t, queue, workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 2, Rate: "5/s"}})
	worstMost, worstSecond, over5 := 0, 0, 0
	for _, h := range hosts {
		times, most := h.record()
		sec := mostInSecond(times)
		worstMost, worstSecond = max(worstMost, most), max(worstSecond, sec)
		if sec > 5 {
			over5++
		}
		if len(times) != 15 {
			t.Errorf("%s: %d requests, want 15", h.URL, len(times))
		}
	}
	t.Logf("%d URLs in %s; worst host: %d at once, %d in one second; %d of 20 hosts saw more than 5 in a second", len(urls), time.Since(begin), worstMost, worstSecond, over5)
	if worstMost > 2 {
		t.Errorf("a host had %d requests open at once, want max_in_flight 2", worstMost)
	}
	if worstSecond > 5+3 {
		t.Errorf("a host saw %d requests in one second, want 5 and a burst of one per worker", worstSecond)
	}
}

// TestMaxInFlightOneWhenWorkersJoinABatch: per_host {max_in_flight: 1}
// while fetch workers start. "alone first": one worker has run alone
// for 8 s (it counts 1), and two more start with the batch; "together":
// three workers start with the batch. Workers that join others hold
// back until they are counted, and a small max_in_flight is held in the
// store: never more than 1 at once.
func TestMaxInFlightOneWhenWorkersJoinABatch(t *testing.T) {
	for i, c := range []struct {
		name  string
		alone bool
	}{{"alone first", true}, {"together", false}} {
		t.Run(c.name, func(t *testing.T) {
			queue := fmt.Sprintf("e2e-edge-joinbatch-%d", i)
			host := newEdgeHost(t, 207+i, time.Second, "")
			var urls []string
			for i := range 6 {
				urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
			}
			names := []string{"a", "b", "c"}
			if c.alone {
				started := time.Now()
				a := startFetchWorker(t, queue, "a", workers.DefaultShareRefresh)
				waitShare(t, 1, a)
				time.Sleep(time.Until(started.Add(8 * time.Second)))
				names = names[1:]
			}
			var wg sync.WaitGroup
			for _, n := range names {
				wg.Add(1)
				go func() { defer wg.Done(); startFetchWorker(t, queue, n, workers.DefaultShareRefresh) }()
			}
			run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
				workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 1}})
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			out, err := result(t, run)
			if err != nil {
				t.Fatal(err)
			}
			times, most := host.record()
			t.Logf("%d of %d ok, %d requests, at most %d at once, over %s", out.OK, len(urls), len(times), most, times[len(times)-1].Sub(times[0]))
			if most > 1 {
				t.Errorf("the host had %d requests open at once, want max_in_flight 1 (workers that join hold back until the others count them)", most)
			}
		})
	}
}

// robotsHost is a test host on 127.0.1.n whose /robots.txt is served by
// robots, and whose pages answer their path; it records page times.
func robotsHost(t *testing.T, n int, robots http.HandlerFunc) *edgeHost {
	t.Helper()
	h := &edgeHost{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", n))
	if err != nil {
		t.Fatal(err)
	}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/robots.txt") {
			robots(w, r)
			return
		}
		h.mu.Lock()
		h.times = append(h.times, time.Now())
		h.mu.Unlock()
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	h.Listener.Close()
	h.Listener = l
	h.Start()
	t.Cleanup(h.Close)
	return h
}

// TestRobotsOfEveryKind: one batch with robots "obey" and no per_host
// rule over hosts whose robots.txt is missing, a 500, a 429, a redirect
// loop, a group for batchfetch that allows what * disallows, and a
// Disallow of a prefix: each URL ends as README's robots.txt section
// says.
func TestRobotsOfEveryKind(t *testing.T) {
	const queue = "e2e-edge-robots"
	text := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, s) }
	}
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
	}
	loop := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/robots.txt?"+r.URL.RawQuery+"x", http.StatusFound)
	}
	cases := []struct {
		name   string
		robots http.HandlerFunc
		path   string
		want   string
	}{
		{"missing", status(404), "/a", "ok"},
		{"500", status(500), "/a", "robots_disallowed"},
		{"429", status(429), "/a", "robots_disallowed"},
		{"redirect loop", loop, "/a", "ok"}, // RFC 9309: over 5 redirects is unavailable, as a 4xx
		{"own group", text("User-agent: *\nDisallow: /\n\nUser-agent: batchfetch\nAllow: /\n"), "/a", "ok"},
		{"prefix allowed", text("User-agent: *\nDisallow: /private\n"), "/public/x", "ok"},
		{"prefix", text("User-agent: *\nDisallow: /private\n"), "/private/x", "robots_disallowed"},
		{"prefix, encoded", text("User-agent: *\nDisallow: /private\n"), "/%70rivate/x", "robots_disallowed"},
	}
	var urls []string
	for i, c := range cases {
		h := robotsHost(t, 230+i, c.robots)
		urls = append(urls, h.URL+c.path)
	}
	startFetchWorker(t, queue, "a", 100*time.Millisecond)
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, Robots: "obey"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		r := out.Results[i]
		t.Logf("%s: %s %q", c.name, r.Outcome, r.Error)
		if r.Outcome != c.want {
			t.Errorf("robots.txt %s, %s: outcome %s (%s), want %s", c.name, c.path, r.Outcome, r.Error, c.want)
		}
	}
}

// TestCrawlDelayWithoutPerHostRule: a batch with robots "obey" and no
// per_host rule, of a host whose robots.txt says Crawl-delay: 1. README's
// Per-host limits: "A robots.txt Crawl-delay (with robots: "obey")
// lowers the rate further"; its robots.txt section: "Crawl-delay is
// read, not yet applied". A crawler obeying robots.txt should leave 1 s
// between requests (a little less for timers): 4 URLs over about 3 s.
func TestCrawlDelayWithoutPerHostRule(t *testing.T) {
	const queue = "e2e-edge-crawl-delay-alone"
	delay := robotsHost(t, 240, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nCrawl-delay: 1\n")
	})
	var urls []string
	for i := range 4 {
		urls = append(urls, fmt.Sprintf("%s/d/%d", delay.URL, i))
	}
	startFetchWorker(t, queue, "a", 100*time.Millisecond)
	runAllOK(t, queue, workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, Robots: "obey"})
	times, _ := delay.record()
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]).Round(10*time.Millisecond))
	}
	t.Logf("%d requests, gaps %v", len(times), gaps)
	for _, g := range gaps {
		if g < 900*time.Millisecond {
			t.Errorf("requests %v apart, the host's robots.txt asks Crawl-delay: 1", gaps)
			break
		}
	}
}

// TestRobotsSlowAndHuge: robots "obey" over a host whose robots.txt takes
// 15 s (README: URLs wait for it "10 s at most"; a timeout disallows the
// host), a host whose robots.txt is 2 MiB of comments with "Disallow: /"
// past the first 500 KiB (only the first 500 KiB are obeyed), and a
// quick host with no robots.txt, which the slow one must not hold back.
func TestRobotsSlowAndHuge(t *testing.T) {
	const queue = "e2e-edge-robots-slow"
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := robotsHost(t, 241, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(15 * time.Second):
		case <-release:
		}
		_, _ = io.WriteString(w, "User-agent: *\nAllow: /\n")
	})
	huge := robotsHost(t, 242, func(w http.ResponseWriter, r *http.Request) {
		line := "# " + strings.Repeat("x", 1000) + "\n"
		for range 2 << 10 {
			_, _ = io.WriteString(w, line)
		}
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /\n")
	})
	quick := robotsHost(t, 243, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	urls := []string{slow.URL + "/a", huge.URL + "/a", quick.URL + "/a", quick.URL + "/b"}
	startFetchWorker(t, queue, "a", 100*time.Millisecond)
	begin := time.Now()
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, Robots: "obey", PerHost: &workflows.PerHost{Rate: "10/s"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	for i, r := range out.Results {
		t.Logf("%s: %s %q after %d ms", urls[i], r.Outcome, r.Error, r.ElapsedMS)
	}
	qt, _ := quick.record()
	t.Logf("batch %s; quick host's last request %s after the start", took, qt[len(qt)-1].Sub(begin))
	if got := out.Results[0].Outcome; got != "robots_disallowed" {
		t.Errorf("slow robots.txt: %s, want robots_disallowed (it timed out)", got)
	}
	if got := out.Results[1].Outcome; got != "ok" {
		t.Errorf("2 MiB robots.txt with its Disallow past 500 KiB: %s, want ok", got)
	}
	if out.Results[2].Outcome != "ok" || out.Results[3].Outcome != "ok" {
		t.Errorf("quick host: %s and %s, want ok", out.Results[2].Outcome, out.Results[3].Outcome)
	}
	if qt[len(qt)-1].Sub(begin) > 5*time.Second {
		t.Errorf("the quick host's URLs waited for the slow robots.txt")
	}
	if took > 14*time.Second {
		t.Errorf("the batch took %s: the slow robots.txt held it past the 10 s wait", took)
	}
}

// TestTooManyRequestsWithoutRetryAfter: a host answers its first 6
// requests 429 with no Retry-After (then "Retry-After: 0" on the next 2)
// under per_host {rate: "10/s"}. README: such a 429 pauses the host for
// the URL's backoff (500 ms, doubling): after the first 429 the host
// sees no request for 400 ms, and far fewer than its rate in the second
// after it. A URL the host throttles on every attempt may end as its
// 429; the others end ok.
func TestTooManyRequestsWithoutRetryAfter(t *testing.T) {
	const queue = "e2e-edge-429-bare"
	var mu sync.Mutex
	var times []time.Time
	l, err := net.Listen("tcp", "127.0.1.244:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		switch {
		case n <= 6:
			w.WriteHeader(http.StatusTooManyRequests)
		case n <= 8:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			_, _ = io.WriteString(w, r.URL.Path)
		}
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	startFetchWorker(t, queue, "a", 100*time.Millisecond)
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", srv.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, MaxAttempts: 5, PerHost: &workflows.PerHost{Rate: "10/s"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]time.Time(nil), times...)
	mu.Unlock()
	inSecond := 0
	for _, at := range got[1:] {
		if at.Sub(got[0]) < time.Second {
			inSecond++
		}
	}
	t.Logf("%d of %d ok, %d requests; %d in the second after the first 429 (rate 10/s); the 8 throttled ones over %s; all over %s",
		out.OK, len(urls), len(got), inSecond, got[7].Sub(got[0]), got[len(got)-1].Sub(got[0]))
	if gap := got[1].Sub(got[0]); gap < 400*time.Millisecond {
		t.Errorf("the host was asked again %s after its first 429, want a pause of the URL's 500 ms backoff", gap)
	}
	if inSecond > 3 {
		t.Errorf("%d requests in the second after the first 429, want the host paused", inSecond)
	}
	for _, f := range out.Failures {
		if f.Status != http.StatusTooManyRequests || f.Attempts != 5 {
			t.Errorf("%s: %s %d after %d attempts, want ok, or its 429 after all 5", f.URL, f.Outcome, f.Status, f.Attempts)
		}
	}
	if out.OK < len(urls)-2 {
		t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
	}
}

// TestRateHoldsWhenAWorkerJoins: as TestMaxInFlightHoldsWhenAWorkerJoins,
// a third fetch worker joins two that count each other only every few
// seconds, just before a batch of 40 quick URLs under per_host {rate:
// "5/s"}. The host should see at most 5 a second (and a burst of one
// request per worker): at most 8 in any second, about 5/s over the batch.
func TestRateHoldsWhenAWorkerJoins(t *testing.T) {
	const queue = "e2e-edge-join-rate"
	host := newEdgeHost(t, 245, 0, "")
	started := time.Now()
	a := startFetchWorker(t, queue, "a", workers.DefaultShareRefresh)
	b := startFetchWorker(t, queue, "b", workers.DefaultShareRefresh)
	waitShare(t, 2, a, b)
	time.Sleep(time.Until(started.Add(8 * time.Second)))
	c := startFetchWorker(t, queue, "c", workers.DefaultShareRefresh)
	waitShare(t, 3, c)
	var urls []string
	for i := range 40 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	runAllOK(t, queue, workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{Rate: "5/s"}})
	times, _ := host.record()
	span := times[len(times)-1].Sub(times[0])
	t.Logf("a, b, c counted %d, %d, %d when the batch started; %d requests over %s (%.2f/s), at most %d in one second",
		2, 2, 3, len(times), span, float64(len(times)-1)/span.Seconds(), mostInSecond(times))
	if n := mostInSecond(times); n > 5+3 {
		t.Errorf("%d requests in one second, want at most 5 and a burst of one per worker", n)
	}
	if r := float64(len(times)-1) / span.Seconds(); r > 5.5 {
		t.Errorf("%.2f requests a second over the batch, want 5/s", r)
	}
}
