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

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/politeness"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestMaxInFlightAtTheThresholdWhenAWorkerJoins: two fetch workers divide
// per_host {max_in_flight: 8} (8 is 4 per worker: not held in the store),
// each keeping 4 of a host's 1 s pages open. A third joins while the
// batch runs: 8 is now under 4 per worker, so the store holds it from the
// others' next count. The requests they opened unheld hold no slot, yet
// count as open: the host should still never see more than 8 at once.
func TestMaxInFlightAtTheThresholdWhenAWorkerJoins(t *testing.T) {
	const queue = "e2e-break26b-threshold"
	host := newEdgeHost(t, 150, time.Second, "")
	started := time.Now()
	a := startFetchWorker(t, queue, "a", workers.DefaultShareRefresh)
	b := startFetchWorker(t, queue, "b", workers.DefaultShareRefresh)
	waitShare(t, 2, a, b)
	// a and b count at 0, 1, 3, 7 s, then 12 s: the batch runs across
	// their 12 s count, c joins just after it starts.
	time.Sleep(time.Until(started.Add(8 * time.Second)))
	var urls []string
	for i := range 90 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, PerHost: &workflows.PerHost{MaxInFlight: 8}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(started.Add(9 * time.Second)))
	c := startFetchWorker(t, queue, "c", workers.DefaultShareRefresh)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
	}
	times, most := host.record()
	t.Logf("a, b, c count %d, %d, %d; %d requests, at most %d at once, over %s", a.HostShare(), b.HostShare(), c.HostShare(),
		len(times), most, times[len(times)-1].Sub(times[0]))
	if most > 8 {
		t.Errorf("the host had %d requests open at once, want max_in_flight 8", most)
	}
}

// noDescribe is a client to the test's server whose DescribeTaskQueue is
// refused, as by an API key whose role may run workers but not describe
// task queues.
func noDescribe(t *testing.T) client.Client {
	t.Helper()
	refuse := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, "/DescribeTaskQueue") {
			return serviceerror.NewPermissionDenied("DescribeTaskQueue not allowed", "")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c, err := client.Dial(client.Options{HostPort: env.stack.FrontendAddress(),
		ConnectionOptions: client.ConnectionOptions{DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(refuse)}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestPerHostRuleWhenWorkersCannotBeCounted: the only fetch worker cannot
// count the fetch workers (DescribeTaskQueue refused). A small batch of 3
// quick URLs under per_host {max_in_flight: 2} with url_timeout 8s should
// still be fetched (held in the store, or the rule kept as if alone), not
// wait for a count that never comes.
func TestPerHostRuleWhenWorkersCannotBeCounted(t *testing.T) {
	const queue = "e2e-break26b-nocount"
	host := newEdgeHost(t, 151, 0, "")
	local := activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}}
	pool, err := workers.Start(noDescribe(t), workers.Config{Role: workers.RoleFetch, TaskQueue: queue, CPUTaskQueue: cpuTaskQueue, Store: env.store,
		HTTP: local, ShareRefresh: 100 * time.Millisecond, Deployment: workers.Deployment{MakeCurrent: workers.MakeCurrentAlways}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Stop)
	var urls []string
	for i := range 3 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, URLTimeout: "8s", PerHost: &workflows.PerHost{MaxInFlight: 2}})
	if err != nil {
		t.Fatal(err)
	}
	// 3 quick URLs with url_timeout 8s: done, one way or another, well
	// within 30 s.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out workflows.Output
	err = run.Get(ctx, &out)
	times, _ := host.record()
	if err != nil {
		_ = env.client.CancelWorkflow(context.Background(), run.GetID(), run.GetRunID())
		t.Fatalf("the batch has not ended after 30 s (%v): the host saw %d requests, the worker counts %d fetch workers", err, len(times), pool.HostShare())
	}
	t.Logf("%d of %d ok, %d requests, the worker counts %d fetch workers; failures %+v", out.OK, len(urls), len(times), pool.HostShare(), out.Failures)
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok, want all: a worker that cannot count the others holds its requests back for ever", out.OK, len(urls))
	}
}

// startDefaultRuleWorker is a fetch worker of queue whose every batch
// keeps to per_host rule by default (--per-host-max-in-flight and
// --per-host-rate).
func startDefaultRuleWorker(t *testing.T, queue, name string, rule politeness.Rule) *workers.Pools {
	t.Helper()
	http := activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.1.0/24"}}}
	p, err := env.stack.StartWorkers(workers.Config{HTTP: http, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store,
		Instance: name, PerHost: rule})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// TestSmallBatchKeepsToTheWorkersMaxInFlight: two fetch workers started
// with --per-host-max-in-flight 1, counted, run a small batch (one
// activity per URL) of 12 URLs of a host whose pages take 300 ms: the
// host never sees 2 at once, and every URL is ok in one attempt (waiting
// for the host uses no Temporal attempt).
func TestSmallBatchKeepsToTheWorkersMaxInFlight(t *testing.T) {
	const queue = "e2e-break26b-small-mif"
	host := newEdgeHost(t, 152, 300*time.Millisecond, "")
	a := startDefaultRuleWorker(t, queue, "a", politeness.Rule{MaxInFlight: 1})
	b := startDefaultRuleWorker(t, queue, "b", politeness.Rule{MaxInFlight: 1})
	waitShare(t, 2, a, b)
	var urls []string
	for i := range 12 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, URLTimeout: "60s"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	times, most := host.record()
	attempts := 0
	for _, r := range out.Results {
		attempts = max(attempts, r.Attempts)
	}
	t.Logf("%d of %d ok, %d requests, at most %d at once, most attempts of a URL %d, over %s", out.OK, len(urls), len(times), most, attempts,
		times[len(times)-1].Sub(times[0]))
	if out.OK != len(urls) || len(times) != len(urls) {
		t.Errorf("%d of %d ok in %d requests: %+v", out.OK, len(urls), len(times), out.Failures)
	}
	if most > 1 {
		t.Errorf("the host had %d requests open at once, want the workers' --per-host-max-in-flight 1", most)
	}
	if attempts > 1 {
		t.Errorf("a URL took %d attempts, want 1", attempts)
	}
	assertNoBlobs(t, run) // the host's slot records go with the batch
}

// TestSmallBatch429WithoutRetryAfterPausesItsHost: a fetch worker started
// with --per-host-max-in-flight 1 runs a small batch (one activity per
// URL, initial_backoff 2s) of 4 URLs of a host that answers its first
// request 429 without Retry-After. README: the host is paused for the
// URL's backoff, so no request reaches it for about 2 s after the 429,
// and every URL ends ok.
func TestSmallBatch429WithoutRetryAfterPausesItsHost(t *testing.T) {
	const queue = "e2e-break26b-small-429"
	var mu sync.Mutex
	var times []time.Time
	l, err := net.Listen("tcp", "127.0.1.153:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	a := startDefaultRuleWorker(t, queue, "a", politeness.Rule{MaxInFlight: 1})
	waitShare(t, 1, a)
	var urls []string
	for i := range 4 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", srv.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, InitialBackoff: "2s", MaxAttempts: 3})
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
	var after []string
	for _, at := range got[1:] {
		after = append(after, at.Sub(got[0]).Round(10*time.Millisecond).String())
	}
	t.Logf("%d of %d ok, %d requests; after the 429: %v", out.OK, len(urls), len(got), after)
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
	}
	if len(got) > 1 && got[1].Sub(got[0]) < 1500*time.Millisecond {
		t.Errorf("the host was asked again %s after its 429, want no request for the URL's 2 s backoff", got[1].Sub(got[0]))
	}
	assertNoBlobs(t, run) // the host's pause record goes with the batch
}

// TestJoiningWorkerHoldsWithinURLTimeouts: a fetch worker started with
// --per-host-max-in-flight 2 has run a while; a second joins it, and
// holds its per-host requests back (4 s at the default refresh) while the
// first counts it. A small batch of 20 quick URLs with url_timeout 6s
// starts just then: every URL is fetched, the host never sees more than
// 2 at once. (A url_timeout under the hold ends the joining worker's
// URLs as timeout: README, Per-host limits, "Not yet".)
func TestJoiningWorkerHoldsWithinURLTimeouts(t *testing.T) {
	const queue = "e2e-break26b-join-timeout"
	host := newEdgeHost(t, 154, 0, "")
	started := time.Now()
	a := startDefaultRuleWorker(t, queue, "a", politeness.Rule{MaxInFlight: 2})
	waitShare(t, 1, a)
	time.Sleep(time.Until(started.Add(8 * time.Second)))
	c := startDefaultRuleWorker(t, queue, "c", politeness.Rule{MaxInFlight: 2})
	waitShare(t, 2, c)
	var urls []string
	for i := range 20 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", host.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, URLTimeout: "6s"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	times, most := host.record()
	t.Logf("a, c count %d, %d; %d of %d ok, %d requests, at most %d at once", a.HostShare(), c.HostShare(), out.OK, len(urls), len(times), most)
	if most > 2 {
		t.Errorf("the host had %d requests open at once, want the workers' max_in_flight 2", most)
	}
	for _, f := range out.Failures {
		t.Logf("%s: %s after %d attempts, %d ms: %s", f.URL, f.Outcome, f.Attempts, f.ElapsedMS, f.Error)
	}
	for _, r := range out.Results {
		if r.Outcome != "ok" {
			t.Logf("result %s: %s, %d attempts, %d ms", r.URL, r.Outcome, r.Attempts, r.ElapsedMS)
			if r.Outcome == "timeout" && r.ElapsedMS < 5500 {
				t.Errorf("%s ended timeout after its 6 s url_timeout, its elapsed_ms says %d", r.URL, r.ElapsedMS)
			}
		}
	}
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok, want all: the joining worker's hold ran out their url_timeout", out.OK, len(urls))
	}
}
