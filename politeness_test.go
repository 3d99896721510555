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

// countingHost is a test host on 127.0.1.n that answers after delay and
// records when each request came and the most it had open at once.
type countingHost struct {
	*httptest.Server
	mu         sync.Mutex
	open, most int
	times      []time.Time
}

func newCountingHost(t *testing.T, n int, delay time.Duration) *countingHost {
	t.Helper()
	h := &countingHost{}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", n))
	if err != nil {
		t.Fatal(err)
	}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.open++
		h.most = max(h.most, h.open)
		h.times = append(h.times, time.Now())
		h.mu.Unlock()
		time.Sleep(delay) // a slow page
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

func (h *countingHost) record() (times []time.Time, most int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Time(nil), h.times...), h.most
}

// mostInSecond is the most requests in any window of one second.
func mostInSecond(times []time.Time) int {
	most := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// TestPerHostRuleHoldsAcrossWorkers: two fetch workers serve a batch with
// per_host {max_in_flight: 2, rate: "5/s"}. The slow host never has more
// than 2 requests open at once nor more than 5 in any second (and the
// burst of one request per worker), the two workers sharing the rule;
// the batch's other host is not held back by the slow one.
func TestPerHostRuleHoldsAcrossWorkers(t *testing.T) {
	const queue = "e2e-per-host"
	slow, quick := newCountingHost(t, 31, time.Second), newCountingHost(t, 32, 0)
	http := activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}}
	var pools []*workers.Pools
	for _, name := range []string{"a", "b"} {
		p, err := env.stack.StartWorkers(workers.Config{HTTP: http, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store,
			Instance: name, ShareRefresh: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop()
		pools = append(pools, p)
	}
	// Each worker counts both before the batch starts.
	for deadline := time.Now().Add(30 * time.Second); pools[0].HostShare() != 2 || pools[1].HostShare() != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the workers count %d and %d fetch workers, want 2", pools[0].HostShare(), pools[1].HostShare())
		}
	}
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("%s/slow/%d", slow.URL, i))
	}
	for i := range 10 {
		urls = append(urls, fmt.Sprintf("%s/quick/%d", quick.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 2, Rate: "5/s"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != 30 {
		t.Errorf("%d of 30 ok: %+v", out.OK, out.Failures)
	}
	for i, r := range out.Results {
		if r.URL != urls[i] {
			t.Fatalf("result %d is %s, want %s (input order)", i, r.URL, urls[i])
		}
	}
	slowTimes, slowMost := slow.record()
	quickTimes, quickMost := quick.record()
	if slowMost > 2 || quickMost > 2 {
		t.Errorf("at most %d (slow host) and %d (other host) requests at once, want max_in_flight 2", slowMost, quickMost)
	}
	const burst = 2 // one request's burst per worker
	for name, times := range map[string][]time.Time{"slow": slowTimes, "other": quickTimes} {
		if n := mostInSecond(times); n > 5+burst {
			t.Errorf("%s host: %d requests in one second, want at most 5 and a burst of %d", name, n, burst)
		}
	}
	first := slowTimes[0]
	if quickTimes[0].Before(first) {
		first = quickTimes[0]
	}
	quickDone, slowDone := quickTimes[len(quickTimes)-1].Sub(first), slowTimes[len(slowTimes)-1].Sub(first)
	t.Logf("slow host: %d requests, at most %d at once, %d in a second, last after %s; other host: %d, at most %d at once, %d in a second, last after %s",
		len(slowTimes), slowMost, mostInSecond(slowTimes), slowDone, len(quickTimes), quickMost, mostInSecond(quickTimes), quickDone)
	if quickDone > 4*time.Second || slowDone < 8*time.Second {
		t.Errorf("the other host's URLs were last asked after %s and the slow host's after %s: want the 10 within 4s at 5/s, the 20 slow ones (1s each, 2 at once) after 9s or so", quickDone, slowDone)
	}
}
