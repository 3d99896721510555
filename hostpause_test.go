package batchfetch_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// throttlingHost is a test host on 127.0.1.n that answers its nth
// request 429 with Retry-After: 2 and the others 200, and records when
// each request came.
type throttlingHost struct {
	*httptest.Server
	mu    sync.Mutex
	times []time.Time
}

func newThrottlingHost(t *testing.T, n, nth int) *throttlingHost {
	t.Helper()
	h := &throttlingHost{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", n))
	if err != nil {
		t.Fatal(err)
	}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.times = append(h.times, time.Now())
		throttle := len(h.times) == nth
		h.mu.Unlock()
		if throttle {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	h.Listener.Close()
	h.Listener = l
	h.Start()
	t.Cleanup(h.Close)
	return h
}

func (h *throttlingHost) record() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.times...)
}

// hostPausePropagation is how long another worker may take to hear of a
// pause: it reads the batch's records about once a second, and a request
// it started just before may arrive a little later.
const hostPausePropagation = 1200 * time.Millisecond

// TestHostPauseHoldsAcrossWorkers: three fetch workers serve a batch with
// per_host {max_in_flight: 3, rate: "30/s"}. The throttling host answers
// its first request (or its tenth, once every worker is under way and has
// read the batch's pauses) 429 with Retry-After: 2: from then until 2 s later it
// hears no request from any worker, once the pause has reached them all
// (hostPausePropagation); then it ramps back and every URL ends ok. The
// batch's other host is not held by the pause, and the pause records go
// with the batch.
func TestHostPauseHoldsAcrossWorkers(t *testing.T) {
	for _, nth := range []int{1, 10} {
		t.Run(fmt.Sprintf("request %d", nth), func(t *testing.T) { testHostPause(t, nth) })
	}
}

func testHostPause(t *testing.T, nth int) {
	const queue = "e2e-host-pause"
	slow, quick := newThrottlingHost(t, 35, nth), newCountingHost(t, 36, 0)
	http := activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}}
	var pools []*workers.Pools
	for _, name := range []string{"a", "b", "c"} {
		p, err := env.stack.StartWorkers(workers.Config{HTTP: http, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store,
			Instance: name, ShareRefresh: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		pools = append(pools, p)
	}
	// Each worker counts all three before the batch starts.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		counted := 0
		for _, p := range pools {
			if p.HostShare() == 3 {
				counted++
			}
		}
		if counted == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of the 3 workers count 3 fetch workers", counted)
		}
	}
	var urls []string
	for i := range 70 {
		if i%7 == 6 {
			urls = append(urls, fmt.Sprintf("%s/quick/%d", quick.URL, i))
		} else {
			urls = append(urls, fmt.Sprintf("%s/slow/%d", slow.URL, i))
		}
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 3, Rate: "30/s"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
	}
	slowTimes := slow.record()
	quickTimes, _ := quick.record()
	if len(slowTimes) != 61 || len(quickTimes) != 10 {
		t.Fatalf("%d requests to the throttling host, %d to the other: want 61 (60 URLs, one asked twice) and 10", len(slowTimes), len(quickTimes))
	}
	throttled := slowTimes[nth-1]
	end := throttled.Add(2 * time.Second)
	var early, held, after int
	var lastEarly time.Duration
	for _, at := range slowTimes[nth:] {
		switch {
		case at.Before(throttled.Add(hostPausePropagation)):
			early++ // before the pause reached every worker
			lastEarly = at.Sub(throttled)
		case at.Before(end):
			held++
			t.Errorf("a request %s after the 429, within its Retry-After of 2s (and past the pause's propagation, %s)", at.Sub(throttled), hostPausePropagation)
		default:
			after++
		}
	}
	var quickDuring int
	for _, at := range quickTimes {
		if at.After(throttled) && at.Before(end) {
			quickDuring++
		}
	}
	last := slowTimes[len(slowTimes)-1]
	t.Logf("throttling host: %d requests before the pause reached every worker (the last %s after the 429), %d within the pause, %d after it, the last %s after the 429; other host: %d of 10 during the pause, the last %s after the 429",
		early, lastEarly, held, after, last.Sub(throttled), quickDuring, quickTimes[len(quickTimes)-1].Sub(throttled))
	if after == 0 {
		t.Error("no request after the pause")
	}
	if quickTimes[len(quickTimes)-1].After(end) && quickDuring == 0 {
		t.Error("the other host's URLs waited for the throttling host's pause")
	}
	assertNoBlobs(t, run)
}
