package activities

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
)

// robotsSite is a test host on 127.0.1.n: robots answers its
// /robots.txt (nil: 404), every other path a page; it records what it
// was asked.
type robotsSite struct {
	*httptest.Server
	mu      sync.Mutex
	hits    map[string]int
	headers map[string]http.Header // the last request's, by path
}

func newRobotsSite(t *testing.T, n int, robots http.HandlerFunc) *robotsSite {
	t.Helper()
	s := &robotsSite{hits: map[string]int{}, headers: map[string]http.Header{}}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", n))
	if err != nil {
		t.Fatal(err)
	}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.headers[r.URL.Path] = r.Header.Clone()
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/robots.txt" && robots != nil:
			robots(w, r)
		case r.URL.Path == "/robots.txt":
			http.NotFound(w, r)
		default:
			_, _ = io.WriteString(w, "page "+r.URL.Path)
		}
	}))
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *robotsSite) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *robotsSite) header(path string) http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.headers[path]
}

func robotsText(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }
}

// fakeClock is a robots cache's clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type robotsEnv struct {
	env   *testsuite.TestActivityEnvironment
	f     *Fetcher
	clock *fakeClock
}

// newRobotsEnv is a fetch activity whose client may reach 127.0.1.0/24,
// on the blob store in dir ("": one of its own).
func newRobotsEnv(t *testing.T, dir string) *robotsEnv {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	store, err := blobstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.1.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	f := &Fetcher{Client: client, Store: store, Robots: &RobotsCache{Now: clock.now}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f)
	return &robotsEnv{env: env, f: f, clock: clock}
}

var obey = Policy{AttemptTimeout: 2 * time.Second, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond, Robots: RobotsObey}

func (e *robotsEnv) fetch(t *testing.T, p Policy, r *Request, urls ...string) []Fetched {
	t.Helper()
	v, err := e.env.ExecuteActivity(e.f.FetchChunk, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(urls...), Concurrency: 8, Policy: p, Request: r})
	if err != nil {
		t.Fatalf("FetchChunk: %v", err)
	}
	var out FetchChunkResult
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// wantFetched checks that it got a body (no outcome yet: the hash step's).
func wantFetched(t *testing.T, it Fetched) {
	t.Helper()
	if it.Outcome != "" || it.Status != http.StatusOK || it.Blob == "" {
		t.Errorf("%s: want a body, got outcome %q status %d: %s", it.URL, it.Outcome, it.Status, it.Error)
	}
}

// wantRefused checks that robots.txt refused it before any request, with
// an error holding want.
func wantRefused(t *testing.T, it Fetched, want string) {
	t.Helper()
	if it.Outcome != OutcomeRobotsDisallowed || it.Status != 0 || it.Attempts != 0 || it.Blob != "" || !strings.Contains(it.Error, want) {
		t.Errorf("%s: want robots_disallowed with %q, 0 attempts; got outcome %q status %d attempts %d: %s", it.URL, want, it.Outcome, it.Status, it.Attempts, it.Error)
	}
}

func TestRobotsMissingAllowsEveryURL(t *testing.T) {
	site := newRobotsSite(t, 1, nil)
	e := newRobotsEnv(t, "")
	items := e.fetch(t, obey, nil, site.URL+"/a", site.URL+"/private/b")
	for _, it := range items {
		wantFetched(t, it)
	}
	if n := site.count("/robots.txt"); n != 1 {
		t.Errorf("robots.txt asked %d times, want 1", n)
	}
}

func TestRobotsDisallowedURLIsNeverRequested(t *testing.T) {
	site := newRobotsSite(t, 1, robotsText("User-agent: *\nDisallow: /\n\nUser-agent: batchfetch\nDisallow: /private\n"))
	e := newRobotsEnv(t, "")
	items := e.fetch(t, obey, nil, site.URL+"/public", site.URL+"/private/x?y=1")
	wantFetched(t, items[0])
	wantRefused(t, items[1], "disallowed by "+site.URL+"/robots.txt for batchfetch")
	if n := site.count("/private/x"); n != 0 {
		t.Errorf("the disallowed URL was requested %d times", n)
	}
	// Another agent of the batch's own matches the group for all.
	other := e.fetch(t, obey, &Request{Headers: []Header{{Name: "User-Agent", Value: "OtherBot/2.1"}}}, site.URL+"/public")
	wantRefused(t, other[0], "for OtherBot")
}

func TestRobotsUnreachableDisallowsUntilAskedAgain(t *testing.T) {
	var up atomic.Bool
	site := newRobotsSite(t, 1, func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
	})
	e := newRobotsEnv(t, "")
	for _, it := range e.fetch(t, obey, nil, site.URL+"/a", site.URL+"/b") {
		wantRefused(t, it, "could not be fetched (HTTP 503)")
	}
	up.Store(true)
	e.clock.advance(DefaultRobotsErrorTTL - time.Second)
	wantRefused(t, e.fetch(t, obey, nil, site.URL+"/a")[0], "HTTP 503") // still within its while
	if n := site.count("/robots.txt"); n != 1 {
		t.Errorf("robots.txt asked %d times within the error TTL, want 1", n)
	}
	e.clock.advance(2 * time.Second)
	items := e.fetch(t, obey, nil, site.URL+"/a", site.URL+"/private")
	wantFetched(t, items[0])
	wantRefused(t, items[1], "disallowed by")
	if n := site.count("/robots.txt"); n != 2 {
		t.Errorf("robots.txt asked %d times, want 2 (again after the error TTL)", n)
	}
	if n := site.count("/a") + site.count("/b"); n != 1 {
		t.Errorf("pages requested %d times, want 1", n)
	}
}

func TestRobotsOverTheLimitIsCut(t *testing.T) {
	var b strings.Builder
	pad := func(to int) {
		for b.Len() < to-200 {
			b.WriteString("# " + strings.Repeat("x", 97) + "\n")
		}
		b.WriteString("#" + strings.Repeat("x", to-b.Len()-2) + "\n")
	}
	b.WriteString("User-agent: *\nDisallow: /before\n")
	// A rule cut in its middle ("Disallow: /pri") is no rule.
	pad(MaxRobotsBytes - len("Disallow: /pri"))
	b.WriteString("Disallow: /pri-area\n")
	pad(MaxRobotsBytes + 100<<10)
	b.WriteString("Disallow: /after\n")
	site := newRobotsSite(t, 1, robotsText(b.String()))
	e := newRobotsEnv(t, "")
	items := e.fetch(t, obey, nil, site.URL+"/before", site.URL+"/after", site.URL+"/other", site.URL+"/pri-x")
	wantRefused(t, items[0], "disallowed by")
	wantFetched(t, items[1]) // its rule is past the first 500 KiB
	wantFetched(t, items[2])
	wantFetched(t, items[3])
}

func TestRobotsSlowServerCountsAsUnreachable(t *testing.T) {
	site := newRobotsSite(t, 1, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // no answer until the client gives up
	})
	e := newRobotsEnv(t, "")
	p := obey
	p.AttemptTimeout = 300 * time.Millisecond // shorter than the robots timeout
	start := time.Now()
	items := e.fetch(t, p, nil, site.URL+"/a", site.URL+"/b")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the chunk took %s", d)
	}
	for _, it := range items {
		wantRefused(t, it, "no answer within 300ms")
	}
	if n := site.count("/a"); n != 0 {
		t.Errorf("/a requested %d times", n)
	}
}

func TestRobotsIgnoreAsksNoRobotsTxt(t *testing.T) {
	site := newRobotsSite(t, 1, robotsText("User-agent: *\nDisallow: /\n"))
	e := newRobotsEnv(t, "")
	p := obey
	p.Robots = RobotsIgnore
	for _, pol := range []Policy{p, quick} {
		for _, it := range e.fetch(t, pol, nil, site.URL+"/a") {
			wantFetched(t, it)
		}
	}
	if n := site.count("/robots.txt"); n != 0 {
		t.Errorf("robots.txt asked %d times by a batch that ignores it", n)
	}
}

func TestRobotsOneFetchPerHost(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // lets the URLs of the host pile up behind it
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /no\n")
	}
	a, b := newRobotsSite(t, 1, slow), newRobotsSite(t, 2, slow)
	e := newRobotsEnv(t, "")
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("%s/p%d", a.URL, i), fmt.Sprintf("%s/no/%d", b.URL, i))
	}
	items := e.fetch(t, obey, nil, urls...)
	for i, it := range items {
		if i%2 == 0 {
			wantFetched(t, it)
		} else {
			wantRefused(t, it, "disallowed by "+b.URL)
		}
	}
	if na, nb := a.count("/robots.txt"), b.count("/robots.txt"); na != 1 || nb != 1 {
		t.Errorf("robots.txt asked %d and %d times, want once per host", na, nb)
	}
	// Another fetch worker of the blob store reads it there.
	other := newRobotsEnv(t, e.f.Store.(*blobstore.Dir).Root)
	wantRefused(t, other.fetch(t, obey, nil, b.URL+"/no/x")[0], "disallowed by")
	if nb := b.count("/robots.txt"); nb != 1 {
		t.Errorf("robots.txt asked %d times with another worker on the same blob store, want 1", nb)
	}
}

func TestRobotsRequestCarriesNoCredentials(t *testing.T) {
	site := newRobotsSite(t, 1, robotsText("User-agent: teambot\nDisallow: /private\n"))
	e := newRobotsEnv(t, "")
	e.f.Secrets = mustStore(t, t.TempDir(), nil, "BATCHFETCH_SECRET_TOKEN=s3cr3t-value")
	r := &Request{Headers: []Header{
		{Name: "Authorization", Value: "Bearer ${secret:TOKEN}"},
		{Name: "Cookie", Value: "session=abc"},
		{Name: "X-Team", Value: "blue"},
		{Name: "User-Agent", Value: "TeamBot/2.0"},
	}}
	items := e.fetch(t, obey, r, site.URL+"/page", site.URL+"/private")
	wantFetched(t, items[0])
	wantRefused(t, items[1], "for TeamBot")
	got := site.header("/robots.txt")
	for _, h := range []string{"Authorization", "Cookie", "X-Team"} {
		if v := got.Get(h); v != "" {
			t.Errorf("robots.txt request carried %s: %q", h, v)
		}
	}
	if ua := got.Get("User-Agent"); ua != "TeamBot/2.0" {
		t.Errorf("robots.txt asked as %q, want the batch's User-Agent", ua)
	}
	if v := site.header("/page").Get("Authorization"); v != "Bearer s3cr3t-value" {
		t.Errorf("the page itself got Authorization %q", v)
	}
}

func TestRobotsRedirects(t *testing.T) {
	rules := newRobotsSite(t, 2, robotsText("User-agent: *\nDisallow: /private\n"))
	moved := newRobotsSite(t, 1, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, rules.URL+"/robots.txt", http.StatusMovedPermanently)
	})
	loop := newRobotsSite(t, 3, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/robots.txt", http.StatusFound)
	})
	e := newRobotsEnv(t, "")
	items := e.fetch(t, obey, nil, moved.URL+"/private", moved.URL+"/public", loop.URL+"/private")
	wantRefused(t, items[0], "disallowed by "+moved.URL+"/robots.txt")
	wantFetched(t, items[1])
	wantFetched(t, items[2]) // more than 5 redirects: no robots.txt
	if n := loop.count("/robots.txt"); n != robotsRedirects+1 {
		t.Errorf("a looping robots.txt was asked %d times, want %d", n, robotsRedirects+1)
	}
}

func TestRobotsRefusesAOneURLActivity(t *testing.T) {
	site := newRobotsSite(t, 1, robotsText("User-agent: *\nDisallow: /private\n"))
	e := newRobotsEnv(t, "")
	_, err := e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: site.URL + "/private"}, Policy: obey})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != RobotsDisallowedType || !appErr.NonRetryable() {
		t.Fatalf("want a final %s error, got %v", RobotsDisallowedType, err)
	}
	var word Fetched
	if err := appErr.Details(&word); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, word, "disallowed by "+site.URL+"/robots.txt for batchfetch")
	if n := site.count("/private"); n != 0 {
		t.Errorf("the URL was requested %d times", n)
	}
}

func TestParseRobotsUsesTheRulesItCanRead(t *testing.T) {
	d := parseRobots([]byte("Disallow: /early\nUser-agent: *\nCrawl-delay: soon\nDisallow: /private\nCrawl-delay: 2.5\n"))
	if d.TestAgent("/private/x", "batchfetch") || !d.TestAgent("/early", "batchfetch") {
		t.Errorf("the rules after the lines it cannot read are lost")
	}
	c := &RobotsCache{}
	c.put("http://a.example", &robotsEntry{kind: robotsParsed, data: d, expires: time.Now().Add(time.Hour)})
	if delay, ok := c.CrawlDelay("http://A.example", "batchfetch/1.0"); !ok || delay != 2500*time.Millisecond {
		t.Errorf("CrawlDelay = %s, %v; want 2.5s", delay, ok)
	}
	if _, ok := c.CrawlDelay("http://b.example", "batchfetch"); ok {
		t.Errorf("a crawl delay for a host never fetched")
	}
}

func TestProductToken(t *testing.T) {
	for ua, want := range map[string]string{
		"batchfetch/abc123":               "batchfetch",
		"Mozilla/5.0 (X11; Linux x86_64)": "Mozilla",
		"my_bot-2 (+https://bot.example)": "my_bot-",
		"TeamBot":                         "TeamBot",
		"":                                "",
		"/1.0":                            "",
	} {
		if got := ProductToken(ua); got != want {
			t.Errorf("ProductToken(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestCheckRobots(t *testing.T) {
	for _, ok := range []string{"", RobotsObey, RobotsIgnore} {
		if err := CheckRobots(ok); err != nil {
			t.Errorf("CheckRobots(%q): %v", ok, err)
		}
	}
	err := CheckRobots("Obey")
	if err == nil || !strings.Contains(err.Error(), `robots: "Obey" is not one of "obey", "ignore"`) {
		t.Errorf("CheckRobots(Obey) = %v", err)
	}
}
