package batchfetch_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
)

var clientPort = regexp.MustCompile(`(127\.0\.0\.1):\d+->`)

// faultSite answers each path by its fault; counts are per path, so the two
// modes (whose paths differ by a prefix) see the same sequence.
type faultSite struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func newFaultSite(t *testing.T) *faultSite {
	f := &faultSite{calls: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *faultSite) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls[r.URL.Path]++
	n := f.calls[r.URL.Path]
	f.mu.Unlock()
	fault := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	switch fault {
	case "ok", "filler":
		_, _ = fmt.Fprint(w, "body of ", fault)
	case "404":
		http.NotFound(w, r)
	case "503x1":
		if n == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprint(w, "body after a 503")
	case "503x2":
		if n <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprint(w, "body after two 503s")
	case "500":
		http.Error(w, "broken", http.StatusInternalServerError)
	case "408":
		http.Error(w, "too slow", http.StatusRequestTimeout)
	case "429":
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		_, _ = fmt.Fprint(w, "body after a Retry-After")
	case "429-long":
		w.Header().Set("Retry-After", "30")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	case "slow":
		select { // past any attempt_timeout here
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	case "reset":
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not a clean close
			}
			conn.Close()
		}
	default:
		http.Error(w, "no such fault", http.StatusTeapot)
	}
}

// TestSameFaultsSameResultsInBothModes runs each fault through a batch
// where the URL is an activity of its own (Temporal retries it) and through
// a chunked batch (the chunk activity retries it), and compares the
// results field by field: outcome, status, attempts, size, sha256 and the
// error text are the same.
func TestSameFaultsSameResultsInBothModes(t *testing.T) {
	site := newFaultSite(t)
	// 127.0.0.2 is loopback, but not allowed: the guard refuses it.
	refused := strings.Replace(site.URL, "127.0.0.1", "127.0.0.2", 1)
	base := workflows.Input{AttemptTimeout: "1s", MaxAttempts: 3, InitialBackoff: "100ms"}
	withURLTimeout := base
	withURLTimeout.URLTimeout = "1500ms"
	// A backoff longer than an attempt may last (and than its activity's
	// start-to-close timeout).
	longBackoff := base
	longBackoff.InitialBackoff = "6s"
	cases := []struct {
		name   string
		host   string
		in     workflows.Input
		want   string // outcome:status:attempts
		minDur time.Duration
	}{
		{"404", site.URL, base, "http_error:404:1", 0},
		{"503x2", site.URL, base, "ok:200:3", 300 * time.Millisecond},
		{"500", site.URL, base, "http_error:500:3", 0},
		{"408", site.URL, base, "http_error:408:3", 0},
		{"429", site.URL, base, "ok:200:2", time.Second},
		{"slow", site.URL, base, "timeout:0:3", 3 * time.Second},
		{"slow", site.URL, withURLTimeout, "timeout:0:2", 1500 * time.Millisecond},
		{"429-long", site.URL, withURLTimeout, "http_error:429:1", 0},
		{"503x1", site.URL, longBackoff, "ok:200:2", 6 * time.Second},
		{"reset", site.URL, base, "error:200:3", 0},
		{"ok", refused, base, "error:0:1", 0},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d", tc.name, i), func(t *testing.T) {
			t.Parallel()
			one := tc.in
			one.URLs = []string{fmt.Sprintf("%s/%d/one/%s", tc.host, i, tc.name)}
			chunked := tc.in
			chunked.URLs = []string{fmt.Sprintf("%s/%d/chunk/%s", tc.host, i, tc.name)}
			for j := range workflows.InlineLimit / 10 {
				chunked.URLs = append(chunked.URLs, fmt.Sprintf("%s/%d/chunk/%d/filler", site.URL, i, j))
			}
			outs := make([]workflows.Output, 2)
			var wg sync.WaitGroup
			for k, in := range []workflows.Input{one, chunked} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := result(t, start(t, in))
					if err != nil {
						t.Errorf("batch of %d URLs: %v", len(in.URLs), err)
					}
					outs[k] = out
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			a, b := outs[0].Results[0], outs[1].Results[0]
			got := fmt.Sprintf("%s:%d:%d", a.Outcome, a.Status, a.Attempts)
			if got != tc.want {
				t.Errorf("one URL per activity: %s (%q), want %s", got, a.Error, tc.want)
			}
			b.URL = strings.Replace(b.URL, "/chunk/", "/one/", 1)
			b.Error = strings.ReplaceAll(b.Error, "/chunk/", "/one/")
			// A reset names the connection's ephemeral port.
			a.Error, b.Error = clientPort.ReplaceAllString(a.Error, "$1"), clientPort.ReplaceAllString(b.Error, "$1")
			if a.Outcome != b.Outcome || a.Status != b.Status || a.Attempts != b.Attempts || a.Size != b.Size ||
				a.SHA256 != b.SHA256 || a.Error != b.Error || a.URL != b.URL {
				t.Errorf("the modes differ:\n one URL per activity: %+v\n chunked:              %+v", a, b)
			}
			for k, r := range []int64{a.ElapsedMS, b.ElapsedMS} {
				if time.Duration(r)*time.Millisecond < tc.minDur {
					t.Errorf("mode %d took %d ms, want at least %v (the backoffs and waits)", k, r, tc.minDur)
				}
			}
			t.Logf("%s: %s %q; elapsed %d ms (one), %d ms (chunked)", tc.name, got, a.Error, a.ElapsedMS, b.ElapsedMS)
		})
	}
}

// TestChunkRetryKeepsTheURLsClocks: a URL of a chunked batch gets a 429
// with Retry-After: 6, then its worker goes away while it waits. The chunk
// is retried on another worker from its checkpoint: the URL is asked again
// no sooner than the Retry-After said, its attempts go on from 1, and its
// elapsed time counts from its first attempt. The checkpoint says in a
// line what the chunk is doing.
func TestChunkRetryKeepsTheURLsClocks(t *testing.T) {
	const queue = "e2e-chunk-clocks"
	var mu sync.Mutex
	var asked []time.Time
	s := newSite(t, map[string]http.HandlerFunc{
		"/limited": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			asked = append(asked, time.Now())
			first := len(asked) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "6")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
			_, _ = io.WriteString(w, "finally")
		},
	})
	urls := []string{s.URL + "/limited"}
	for i := range workflows.InlineLimit / 10 {
		urls = append(urls, fmt.Sprintf("%s/filler/%d", s.URL, i))
	}
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, URLTimeout: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	var summary string
	waitForCheckpoint(t, run, "fetch-0", "the Retry-After of URL 1", func(details *commonpb.Payloads) bool {
		var cp activities.FetchCheckpoint
		if converter.GetDefaultDataConverter().FromPayloads(details, &cp) != nil || cp.Running[0].RetryAt == 0 {
			return false
		}
		summary = cp.Summary
		return true
	})
	if !strings.Contains(summary, "retrying "+s.URL+"/limited (HTTP 429 Too Many Requests), attempt 2/3 in ") {
		t.Errorf("checkpoint summary %q does not say which URL waits to retry, why, and which attempt is next", summary)
	}
	replaceFetchWorker(t, pool, queue)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Results[0]
	_, events := historyLength(t, run.GetID(), run.GetRunID())
	scheduled := map[int64]string{}
	retried := false
	for _, ev := range events {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityId()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == "fetch-0" && a.GetAttempt() > 1 {
			retried = true
		}
	}
	if !retried {
		t.Fatal("the chunk was not retried: the test proves nothing")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[1].Sub(asked[0]) < 6*time.Second {
		t.Fatalf("the URL was asked at %v: want twice, 6s apart (its Retry-After)", asked)
	}
	if r.Outcome != workflows.OutcomeOK || r.Attempts != 2 || time.Duration(r.ElapsedMS)*time.Millisecond < asked[1].Sub(asked[0]) {
		t.Errorf("got %+v, want ok after 2 attempts, elapsed from the first (%v before the second)", r, asked[1].Sub(asked[0]))
	}
}
