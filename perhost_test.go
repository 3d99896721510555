package batchfetch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// slowHost answers every path after a delay and remembers the most
// requests it had at once.
type slowHost struct {
	mu        sync.Mutex
	now, most int
	delay     time.Duration
	paths     map[string]int
}

func (h *slowHost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	h.paths[r.URL.Path]++
	h.mu.Unlock()
	time.Sleep(h.delay) // a slow page
	h.mu.Lock()
	h.now--
	h.mu.Unlock()
	_, _ = io.WriteString(w, r.URL.Path)
}

func runOnOneHost(t *testing.T, queue string, perHost, n int, delay time.Duration, attemptTimeout string) (*slowHost, workflows.Output) {
	t.Helper()
	h := &slowHost{delay: delay, paths: map[string]int{}}
	s := newSite(t, nil)
	s.Config.Handler = h
	http := local
	http.MaxConnsPerHost = perHost
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: http, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	var urls []string
	for i := range n {
		urls = append(urls, fmt.Sprintf("%s/page/%d", s.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, MaxInFlight: n, AttemptTimeout: attemptTimeout, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	return h, out
}

// TestMaxInFlightReachesOneHostByDefault: with the worker's default
// per-host cap, a batch of 100 URLs to one host has 100 requests open at
// once, as max_in_flight says.
func TestMaxInFlightReachesOneHostByDefault(t *testing.T) {
	h, out := runOnOneHost(t, "e2e-one-host-default", 0, 100, 3*time.Second, "30s")
	if out.OK != 100 {
		t.Errorf("%d of 100 ok", out.OK)
	}
	if h.most != 100 {
		t.Errorf("at most %d requests at once, want max_in_flight 100", h.most)
	}
}

// TestWaitingForAConnectionIsNotTheAttempt: a per-host cap of 16, 48 URLs
// that take 1.2 s each, attempt_timeout 2s. The third wave waits 2.4 s for
// a connection; its attempts start when their requests go out, so every URL
// is ok after one attempt.
func TestWaitingForAConnectionIsNotTheAttempt(t *testing.T) {
	h, out := runOnOneHost(t, "e2e-one-host-capped", 16, 48, 1200*time.Millisecond, "2s")
	for i, r := range out.Results {
		if r.Outcome != workflows.OutcomeOK || r.Attempts != 1 {
			t.Errorf("URL %d: %s after %d attempts (%q)", i, r.Outcome, r.Attempts, r.Error)
		}
	}
	if h.most > 16 {
		t.Errorf("%d requests at once, over the per-host cap of 16", h.most)
	}
}
