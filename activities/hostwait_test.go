package activities

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/politeness"
)

// runWithin is run's results, or a failure when it has not ended within
// d (its URLs' url_timeout): the chunk is waiting for its host instead
// of ending the URLs the host will not take in time.
func runWithin(t *testing.T, d time.Duration, run func() []Fetched) []Fetched {
	t.Helper()
	done := make(chan []Fetched, 1)
	go func() { done <- run() }()
	select {
	case items := <-done:
		return items
	case <-time.After(d):
		t.Fatalf("the chunk still runs after its URLs' url_timeout (%s): it waits for its host", d)
		return nil
	}
}

// TestHostPausedPastURLTimeoutEndsNow: a host that answers 429 with
// Retry-After: 3600 pauses it far past the URLs' url_timeout (20s): its
// other URLs end at once as timeouts saying why and until when, without
// a request, instead of the chunk waiting; another host's URLs are
// fetched.
func TestHostPausedPastURLTimeoutEndsNow(t *testing.T) {
	h, other := newPacedHost(t, 30), newPacedHost(t, 31)
	env, f := newPerHostEnv(t, 1)
	const batch = "batches/late"
	var mu sync.Mutex
	arrived := 0
	h.first = func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		arrived++
		n := arrived
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		// Another request under way at once: it fails once the
		// worker has paused the host, and its retry meets the pause.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if f.Limits.Why(batch, hostOf(h.URL)).Reason == politeness.ReasonPaused {
				break
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	var tasks []URLTask
	for i := range 6 {
		base := h.URL
		if i >= 4 {
			base = other.URL
		}
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", base, i)})
	}
	p := quick
	p.MaxAttempts = 3
	p.URLTimeout = 20 * time.Second
	p.PerHost = &politeness.Rule{MaxInFlight: 2}
	items := runWithin(t, p.URLTimeout, func() []Fetched {
		return runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: batch, URLs: tasks, Concurrency: 4, Policy: p})
	})
	if len(items) != 6 {
		t.Fatalf("%d results, want 6", len(items))
	}
	for i, it := range items[:4] {
		t.Logf("URL %d: %s after %d attempts: %s", i, it.Outcome, it.Attempts, it.Error)
	}
	want := fmt.Sprintf("host %s asked to wait until ", hostOf(h.URL))
	told := 0
	for i, it := range items[:4] {
		switch {
		case it.Outcome == OutcomeHTTPError && it.Status == http.StatusTooManyRequests:
			told++
			if !strings.Contains(it.Error, "Retry-After (1h0m0s) ends past the URL's url_timeout") {
				t.Errorf("URL %d (the 429): error %q, want it to say its Retry-After ends past url_timeout", i, it.Error)
			}
		case it.Outcome == OutcomeTimeout:
			if !strings.HasPrefix(it.Error, want) || !strings.HasSuffix(it.Error, " UTC (Retry-After); past this URL's url_timeout") {
				t.Errorf("URL %d: error %q, want %q...\" UTC (Retry-After); past this URL's url_timeout\"", i, it.Error, want)
			}
		default:
			t.Errorf("URL %d: %s %q, want the 429 or a timeout", i, it.Outcome, it.Error)
		}
	}
	if told != 1 {
		t.Errorf("%d URLs met the 429, want 1", told)
	}
	if n := len(h.requests()); n > 2 {
		t.Errorf("the paused host had %d requests, want the 2 made before it paused", n)
	}
	for i, it := range items[4:] {
		if it.Outcome != "" || it.Blob == "" {
			t.Errorf("URL %d of the other host: %s %q, want its body", i+4, it.Outcome, it.Error)
		}
	}
}

// TestCrawlDelayPastURLTimeoutEndsNow: a robots.txt Crawl-delay of an
// hour, its robots.txt being the host's request for the hour, would hold
// the host's pages past their url_timeout: they end at once saying so.
func TestCrawlDelayPastURLTimeoutEndsNow(t *testing.T) {
	h := newPacedHost(t, 32)
	h.first = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/robots.txt" {
			return false
		}
		_, _ = io.WriteString(w, "User-agent: *\nCrawl-delay: 3600\n")
		return true
	}
	var tasks []URLTask
	for i := range 3 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", h.URL, i)})
	}
	env, f := newPerHostEnv(t, 1)
	p := obey
	p.URLTimeout = 20 * time.Second
	p.PerHost = &politeness.Rule{Rate: 50}
	items := runWithin(t, p.URLTimeout, func() []Fetched {
		return runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: "batches/cdlate", URLs: tasks, Concurrency: 3, Policy: p})
	})
	if len(items) != 3 {
		t.Fatalf("%d results, want 3", len(items))
	}
	want := fmt.Sprintf("host %s takes its next request at ", hostOf(h.URL))
	for i, it := range items {
		if it.Outcome != OutcomeTimeout || !strings.HasPrefix(it.Error, want) || !strings.HasSuffix(it.Error, " UTC (its robots.txt Crawl-delay); past this URL's url_timeout") {
			t.Errorf("URL %d: %s %q, want a timeout saying %q... Crawl-delay", i, it.Outcome, it.Error, want)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.paths) != 1 || h.paths[0] != "/robots.txt" {
		t.Errorf("the host had requests %v, want robots.txt alone", h.paths)
	}
}
