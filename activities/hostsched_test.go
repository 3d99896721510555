package activities

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/politeness"
)

// pacedHost is a test host on 127.0.1.n that records when each request
// came and the most it had open at once; first, when set, answers
// requests instead until it says false.
type pacedHost struct {
	*httptest.Server
	mu         sync.Mutex
	open, most int
	times      []time.Time
	paths      []string
	first      func(w http.ResponseWriter, r *http.Request) bool
	delay      time.Duration
}

func newPacedHost(t *testing.T, n int) *pacedHost {
	t.Helper()
	h := &pacedHost{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", n))
	if err != nil {
		t.Fatal(err)
	}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.open++
		h.most = max(h.most, h.open)
		h.times = append(h.times, time.Now())
		h.paths = append(h.paths, r.URL.Path)
		first := h.first
		h.mu.Unlock()
		defer func() { h.mu.Lock(); h.open--; h.mu.Unlock() }()
		if first != nil && first(w, r) {
			return
		}
		time.Sleep(h.delay) // a slow page
		_, _ = io.WriteString(w, "page "+r.URL.Path)
	}))
	h.Listener.Close()
	h.Listener = l
	h.Start()
	t.Cleanup(h.Close)
	return h
}

func (h *pacedHost) requests() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.times...)
}

// mostIn is the most requests in any window w.
func mostIn(times []time.Time, w time.Duration) int {
	most := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < w; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

func newPerHostEnv(t *testing.T, share int) (*testsuite.TestActivityEnvironment, *Fetcher) {
	t.Helper()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.1.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	f := &Fetcher{Client: client, Store: store, Limits: politeness.New(politeness.Config{Share: politeness.FixedShare(share)})}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f)
	return env, f
}

func runPerHostChunk(t *testing.T, env *testsuite.TestActivityEnvironment, f *Fetcher, req FetchChunkRequest) []Fetched {
	t.Helper()
	v, err := env.ExecuteActivity(f.FetchChunk, req)
	if err != nil {
		t.Fatalf("FetchChunk: %v", err)
	}
	var out FetchChunkResult
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// TestChunkSkipsToReadyHosts: a chunk of 400 URLs of a host held to
// 100/s, then 100 of another host, fetches the other host's URLs at
// once, not after the 400; results stay in input order.
func TestChunkSkipsToReadyHosts(t *testing.T) {
	slow, other := newPacedHost(t, 11), newPacedHost(t, 12)
	var tasks []URLTask
	for i := range 500 {
		base := slow.URL
		if i >= 400 {
			base = other.URL
		}
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", base, i)})
	}
	env, f := newPerHostEnv(t, 1)
	p := quick
	p.PerHost = &politeness.Rule{MaxInFlight: 4, Rate: 100}
	start := time.Now()
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/skip", URLs: tasks, Concurrency: 20, Policy: p})
	if len(items) != 500 {
		t.Fatalf("%d results, want 500", len(items))
	}
	for i, it := range items {
		if it.Index != i || it.URL != tasks[i].URL || it.Outcome != "" || it.Blob == "" {
			t.Fatalf("result %d: %+v; want URL %s fetched, in input order", i, it, tasks[i].URL)
		}
	}
	s, o := slow.requests(), other.requests()
	otherDone, slowDone := o[len(o)-1].Sub(start), s[len(s)-1].Sub(start)
	t.Logf("other host's 100 done after %s, the limited host's 400 after %s", otherDone, slowDone)
	if otherDone > 2*time.Second || slowDone < 3500*time.Millisecond {
		t.Errorf("the other host's URLs ended after %s and the limited host's after %s: want the 100 within 2s, the 400 at 100/s (about 4s)", otherDone, slowDone)
	}
	for _, h := range []*pacedHost{slow, other} {
		if h.most > 4 {
			t.Errorf("%d requests at once to one host, want max_in_flight 4", h.most)
		}
		if n := mostIn(h.requests(), time.Second); n > 101 {
			t.Errorf("%d requests in a second to one host, want at most 100 (and the burst of 1)", n)
		}
	}
}

// TestChunkPerHostKeepsCheckpoint: URLs done in an earlier attempt of
// the chunk keep their word and are not fetched again.
func TestChunkPerHostKeepsCheckpoint(t *testing.T) {
	h := newPacedHost(t, 13)
	tasks := chunkOf()
	for i := range 10 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", h.URL, i)})
	}
	env, f := newPerHostEnv(t, 1)
	env.SetHeartbeatDetails(FetchCheckpoint{Done: []Fetched{
		{Index: 2, URL: tasks[2].URL, Outcome: OutcomeHTTPError, Status: 404, Error: "HTTP 404 Not Found", Attempts: 1},
		{Index: 7, URL: tasks[7].URL, Outcome: OutcomeHTTPError, Status: 410, Error: "HTTP 410 Gone", Attempts: 1},
	}})
	p := quick
	p.PerHost = &politeness.Rule{Rate: 50}
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/cp", URLs: tasks, Concurrency: 4, Policy: p})
	if len(items) != 10 {
		t.Fatalf("%d results, want 10", len(items))
	}
	for i, it := range items {
		want := ""
		switch i {
		case 2, 7:
			want = OutcomeHTTPError
		}
		if it.Index != i || it.Outcome != want {
			t.Errorf("result %d: index %d outcome %q, want %d %q", i, it.Index, it.Outcome, i, want)
		}
	}
	if n := len(h.requests()); n != 8 {
		t.Errorf("%d requests, want the 8 URLs not done yet", n)
	}
}

// TestRetryAfterPausesHost: a 429 with Retry-After: 1 holds back every
// URL of its host in this worker, not only the one that met it.
func TestRetryAfterPausesHost(t *testing.T) {
	h := newPacedHost(t, 14)
	var once sync.Once
	h.first = func(w http.ResponseWriter, r *http.Request) bool {
		answered := false
		once.Do(func() {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			answered = true
		})
		return answered
	}
	var tasks []URLTask
	for i := range 6 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", h.URL, i)})
	}
	env, f := newPerHostEnv(t, 1)
	p := quick
	p.PerHost = &politeness.Rule{MaxInFlight: 1, Rate: 100}
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/pause", URLs: tasks, Concurrency: 6, Policy: p})
	for i, it := range items {
		if it.Outcome != "" {
			t.Errorf("URL %d: %s %s", i, it.Outcome, it.Error)
		}
	}
	times := h.requests()
	if len(times) != 7 {
		t.Fatalf("%d requests, want 6 and the retry", len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 950*time.Millisecond {
		t.Errorf("the host's next request came %s after its 429 with Retry-After: 1", gap)
	}
}

// TestCrawlDelayPacesChunk: in a batch that obeys robots.txt, a host's
// Crawl-delay: 1 holds its pages a second apart although the rule
// allows 50/s; the others wait while the first reads robots.txt.
func TestCrawlDelayPacesChunk(t *testing.T) {
	h := newPacedHost(t, 15)
	h.first = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/robots.txt" {
			return false
		}
		_, _ = io.WriteString(w, "User-agent: *\nCrawl-delay: 1\n")
		return true
	}
	var tasks []URLTask
	for i := range 4 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", h.URL, i)})
	}
	env, f := newPerHostEnv(t, 1)
	p := obey
	p.PerHost = &politeness.Rule{Rate: 50}
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/cd", URLs: tasks, Concurrency: 4, Policy: p})
	for i, it := range items {
		if it.Outcome != "" {
			t.Errorf("URL %d: %s %s", i, it.Outcome, it.Error)
		}
	}
	h.mu.Lock()
	var pages []time.Time
	robots := 0
	for i, path := range h.paths {
		if path == "/robots.txt" {
			robots++
		} else {
			pages = append(pages, h.times[i])
		}
	}
	h.mu.Unlock()
	if robots != 1 || len(pages) != 4 {
		t.Fatalf("%d robots.txt and %d page requests, want 1 and 4", robots, len(pages))
	}
	for i := 1; i < len(pages); i++ {
		if gap := pages[i].Sub(pages[i-1]); gap < 900*time.Millisecond { // 100ms for scheduling
			t.Errorf("page %d came %s after the one before, want the Crawl-delay of 1s", i, gap)
		}
	}
}

// TestWorkerDefaultRule: a batch without per_host keeps to the worker's
// default rule.
func TestWorkerDefaultRule(t *testing.T) {
	h := newPacedHost(t, 17)
	h.delay = 200 * time.Millisecond
	var tasks []URLTask
	for i := range 6 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", h.URL, i)})
	}
	env, f := newPerHostEnv(t, 1)
	f.PerHost = politeness.Rule{MaxInFlight: 1}
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/def", URLs: tasks, Concurrency: 6, Policy: quick})
	if len(items) != 6 {
		t.Fatalf("%d results, want 6", len(items))
	}
	if h.most != 1 {
		t.Errorf("%d requests at once, want the worker's default max_in_flight 1", h.most)
	}
}

// TestPerHostCutIsExact: a fetch that hands over early (its budget met)
// returns the URLs before its cut, each with its final word, in order,
// although it started URLs of other hosts past the cut.
func TestPerHostCutIsExact(t *testing.T) {
	slow, other := newPacedHost(t, 18), newPacedHost(t, 19)
	var tasks []URLTask
	for i := range 20 {
		base := slow.URL
		if i >= 10 {
			base = other.URL
		}
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", base, i)})
	}
	env, f := newPerHostEnv(t, 1)
	p := quick
	p.PerHost = &politeness.Rule{Rate: 4}
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/cut", URLs: tasks, Concurrency: 8, Policy: p, Budget: 1})
	if len(items) == 0 || len(items) == 20 {
		t.Fatalf("%d URLs handed over, want a cut before the end (budget of 1 byte)", len(items))
	}
	for i, it := range items {
		if it.Index != i || it.Outcome != "" || it.Blob == "" {
			t.Errorf("item %d: %+v; want URL %d's body", i, it, i)
		}
	}
	t.Logf("cut after %d URLs; the other host had %d requests", len(items), len(other.requests()))
}
