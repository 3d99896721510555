package batchfetch_test

// End-to-end tests: a real Temporal server (the embedded dev server, in
// memory), real workers, real HTTP servers on 127.0.0.1 and real files.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

const (
	taskQueue    = "e2e"
	cpuTaskQueue = "e2e-cpu"
)

// local lets the workers fetch from the test servers on 127.0.0.1 (the
// guard refuses loopback addresses otherwise).
var local = activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}}

var env struct {
	stack   *devstack.Stack
	client  client.Client
	blobDir string
	store   *blobstore.Dir
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	stack, err := devstack.Start(context.Background(), devstack.Config{Workers: workers.Config{HTTP: local, TaskQueue: taskQueue, CPUTaskQueue: cpuTaskQueue}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the dev stack:", err)
		return 1
	}
	defer stack.Stop()
	env.stack = stack
	env.client, env.blobDir, env.store = stack.Client, stack.BlobDir(), stack.Store.(*blobstore.Dir)
	return m.Run()
}

// site is a test web server on 127.0.0.1 that records every request.
type site struct {
	*httptest.Server
	mu   sync.Mutex
	hits map[string][]time.Time
}

func newSite(t *testing.T, routes map[string]http.HandlerFunc) *site {
	t.Helper()
	s := &site{hits: map[string][]time.Time{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path] = append(s.hits[r.URL.Path], time.Now())
		s.mu.Unlock()
		if h, ok := routes[r.URL.Path]; ok {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *site) hitTimes(path string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.hits[path]...)
}

func (s *site) totalHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range s.hits {
		n += len(h)
	}
	return n
}

// drip answers with a long body one byte at a time until the client goes
// away; it reports the connection (on connected) and its end (on gone).
func drip(connected chan<- string, gone chan<- time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		connected <- r.URL.Path
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				gone <- time.Now()
				return
			case <-t.C:
				_, _ = w.Write([]byte("x"))
				w.(http.Flusher).Flush()
			}
		}
	}
}

// expectGone checks, once the workflow has ended, that n downloads had
// already closed their connections, each within seconds of since.
func expectGone(t *testing.T, gone <-chan time.Time, n int, since time.Time, what string) {
	t.Helper()
	for i := range n {
		select {
		case at := <-gone:
			if d := at.Sub(since); d > 5*time.Second {
				t.Errorf("download %d stopped %v after %s, want within seconds", i, d, what)
			}
		default:
			t.Errorf("the workflow ended while download %d was still open", i)
		}
	}
}

func start(t *testing.T, in any) client.WorkflowRun {
	t.Helper()
	if typed, ok := in.(workflows.Input); ok && typed.CPUTaskQueue == "" {
		typed.CPUTaskQueue = cpuTaskQueue
		in = typed
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID:        fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano()),
		TaskQueue: taskQueue,
	}, workflows.WorkflowName, in)
	if err != nil {
		t.Fatalf("starting: %v", err)
	}
	return run
}

func result(t *testing.T, run client.WorkflowRun) (workflows.Output, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	err := run.Get(ctx, &out)
	return out, err
}

// assertNoBlobs checks that a finished run left nothing in the blob store.
func assertNoBlobs(t *testing.T, run client.WorkflowRun) {
	t.Helper()
	dir := filepath.Join(env.blobDir, filepath.FromSlash(workflows.BlobPrefix(run.GetRunID())))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(dir)
		t.Errorf("blobs left behind in %s: %d entries", dir, len(entries))
	}
}

// recordHistory saves the run's history for the replay test when
// BATCHFETCH_RECORD_HISTORIES names a directory.
func recordHistory(t *testing.T, run client.WorkflowRun, name string) {
	recordRun(t, run.GetID(), run.GetRunID(), name)
}

func recordRun(t *testing.T, id, runID, name string) {
	dir := os.Getenv("BATCHFETCH_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	iter := env.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []json.RawMessage
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		b, err := protojson.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, b)
	}
	b, _ := json.MarshalIndent(map[string]any{"events": events}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The replayer needs the original IDs: child workflow IDs derive from them.
	meta, _ := json.Marshal(map[string]string{"workflow_id": id, "run_id": runID})
	if err := os.WriteFile(filepath.Join(dir, name+".ids"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBody(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	_, _ = r.Read(b)
	return b
}

func TestBodiesAreHashedOnTheCPUWorker(t *testing.T) {
	bodies := map[string][]byte{
		"/empty": {},
		"/hello": []byte("hello, world\n"),
		"/1m":    randomBody(1 << 20),
		"/64m":   randomBody(64 << 20),
	}
	routes := map[string]http.HandlerFunc{}
	for path, body := range bodies {
		routes[path] = func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		}
	}
	s := newSite(t, routes)
	paths := []string{"/64m", "/hello", "/empty", "/1m", "/hello"}
	var urls []string
	for _, p := range paths {
		urls = append(urls, s.URL+p)
	}
	run := start(t, workflows.Input{URLs: urls})
	out, err := result(t, run)
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	if out.OK != len(urls) || out.Failed != 0 || len(out.Results) != len(urls) {
		t.Fatalf("ok=%d failed=%d results=%d, want %d ok", out.OK, out.Failed, len(out.Results), len(urls))
	}
	for i, p := range paths {
		r := out.Results[i]
		sum := sha256.Sum256(bodies[p])
		if r.URL != urls[i] || r.Outcome != workflows.OutcomeOK || r.Status != 200 || r.Attempts != 1 ||
			r.SHA256 != hex.EncodeToString(sum[:]) || r.Size != int64(len(bodies[p])) {
			t.Errorf("result %d: got %+v\nwant url %s ok 200, 1 attempt, size %d, sha256 %x", i, r, urls[i], len(bodies[p]), sum)
		}
	}
	// The Web UI shows the batch's size and mode from its memo.
	d, err := env.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	if err != nil {
		t.Fatal(err)
	}
	var size int
	var mode string
	fields := d.GetWorkflowExecutionInfo().GetMemo().GetFields()
	_ = converter.GetDefaultDataConverter().FromPayload(fields["urls"], &size)
	_ = converter.GetDefaultDataConverter().FromPayload(fields["mode"], &mode)
	if size != 5 || mode != "collect" {
		t.Errorf("memo urls=%d mode=%q, want the number 5 and collect", size, mode)
	}
	assertNoBlobs(t, run)
	recordHistory(t, run, "collect")
}

func TestStatusesRetriesAndTimeouts(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	call := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		calls[path]++
		return calls[path]
	}
	s := newSite(t, map[string]http.HandlerFunc{
		"/missing": func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) },
		"/flaky": func(w http.ResponseWriter, r *http.Request) {
			if call(r.URL.Path) <= 2 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "third time")
		},
		"/limited": func(w http.ResponseWriter, r *http.Request) {
			if call(r.URL.Path) == 1 {
				w.Header().Set("Retry-After", "2")
				http.Error(w, "slow down", http.StatusTooManyRequests)
				return
			}
			_, _ = io.WriteString(w, "thanks for waiting")
		},
		"/slow": func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // never answers in time
		},
		"/teapot": func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) },
	})
	urls := []string{s.URL + "/missing", s.URL + "/flaky", s.URL + "/limited", s.URL + "/slow", s.URL + "/teapot"}
	run := start(t, workflows.Input{URLs: urls, MaxAttempts: 3, InitialBackoff: "1s", AttemptTimeout: "1s"})
	out, err := result(t, run)
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	want := []struct {
		outcome  string
		status   int
		attempts int
	}{
		{workflows.OutcomeHTTPError, 404, 1},
		{workflows.OutcomeOK, 200, 3},
		{workflows.OutcomeOK, 200, 2},
		{workflows.OutcomeTimeout, 0, 3},
		{workflows.OutcomeHTTPError, 418, 1},
	}
	for i, w := range want {
		r := out.Results[i]
		if r.Outcome != w.outcome || r.Status != w.status || r.Attempts != w.attempts {
			t.Errorf("%s: got outcome %s status %d attempts %d (%q), want %s %d %d", urls[i], r.Outcome, r.Status, r.Attempts, r.Error, w.outcome, w.status, w.attempts)
		}
		if hits := len(s.hitTimes(strings.TrimPrefix(urls[i], s.URL))); hits != w.attempts {
			t.Errorf("%s: server saw %d requests, want %d", urls[i], hits, w.attempts)
		}
	}
	if out.OK != 2 || out.Failed != 3 {
		t.Errorf("ok=%d failed=%d, want 2 and 3", out.OK, out.Failed)
	}
	// Retry-After (2s) wins over the 1s backoff.
	if h := s.hitTimes("/limited"); len(h) == 2 && h[1].Sub(h[0]) < 2*time.Second {
		t.Errorf("retried a 429 with Retry-After: 2 after %v, want at least 2s", h[1].Sub(h[0]))
	}
	// Backoff 1s, then 2s.
	if h := s.hitTimes("/flaky"); len(h) == 3 && (h[1].Sub(h[0]) < time.Second || h[2].Sub(h[1]) < 2*time.Second) {
		t.Errorf("retries came after %v and %v, want at least 1s then 2s", h[1].Sub(h[0]), h[2].Sub(h[1]))
	}
	assertNoBlobs(t, run)
	recordHistory(t, run, "collect-failures")
}

func TestURLTimeoutBoundsRetries(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{
		"/down": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusBadGateway) },
	})
	run := start(t, workflows.Input{URLs: []string{s.URL + "/down"}, MaxAttempts: 100, InitialBackoff: "200ms", URLTimeout: "2s"})
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Results[0]
	if r.Outcome != workflows.OutcomeHTTPError && r.Outcome != workflows.OutcomeTimeout {
		t.Errorf("outcome %s, want http_error or timeout", r.Outcome)
	}
	if hits := len(s.hitTimes("/down")); hits < 2 || hits > 6 {
		t.Errorf("server saw %d requests in a 2s budget with 200ms doubling backoff, want 2 to 6", hits)
	}
}

func TestFailFastCancelsSiblings(t *testing.T) {
	connected := make(chan string, 10)
	gone := make(chan time.Time, 10)
	var failedAt time.Time
	s := newSite(t, map[string]http.HandlerFunc{
		"/drip/1": drip(connected, gone),
		"/drip/2": drip(connected, gone),
		"/drip/3": drip(connected, gone),
		"/missing": func(w http.ResponseWriter, r *http.Request) {
			for range 3 { // fail only once every sibling is downloading
				select {
				case <-connected:
				case <-time.After(30 * time.Second):
				}
			}
			failedAt = time.Now()
			http.NotFound(w, r)
		},
	})
	urls := []string{s.URL + "/drip/1", s.URL + "/drip/2", s.URL + "/missing", s.URL + "/drip/3", s.URL + "/never"}
	run := start(t, workflows.Input{URLs: urls, Mode: workflows.ModeFailFast, MaxInFlight: 4, AttemptTimeout: "2m"})
	_, err := result(t, run)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.BatchFailedType {
		t.Fatalf("got %v, want BatchFailed", err)
	}
	if !strings.Contains(appErr.Message(), s.URL+"/missing") {
		t.Errorf("message %q does not name the failing URL", appErr.Message())
	}
	// The workflow only fails once its siblings are really gone.
	expectGone(t, gone, 3, failedAt, "the failure")
	var out workflows.Output
	if err := appErr.Details(&out); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"canceled", "canceled", "http_error", "canceled", "canceled"} {
		if out.Results[i].Outcome != want {
			t.Errorf("%s: outcome %s, want %s", urls[i], out.Results[i].Outcome, want)
		}
	}
	if n := len(s.hitTimes("/never")); n != 0 {
		t.Errorf("a URL after the failure was requested %d times", n)
	}
	assertNoBlobs(t, run)
	recordHistory(t, run, "fail_fast")
}

// slowStore reads blobs slowly, so a hash is still running when the test
// cancels the batch, and reports how far each reader got.
type slowStore struct {
	blobstore.Store
	opened chan struct{}
	closed chan int64
}

type slowReader struct {
	io.ReadCloser
	s    *slowStore
	read int64
}

func (s *slowStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	s.opened <- struct{}{}
	return &slowReader{ReadCloser: r, s: s}, nil
}

func (r *slowReader) Read(p []byte) (int, error) {
	time.Sleep(20 * time.Millisecond) // a slow disk: 64 MiB takes over 5s
	n, err := r.ReadCloser.Read(p[:min(len(p), 256<<10)])
	r.read += int64(n)
	return n, err
}

func (r *slowReader) Close() error {
	r.s.closed <- r.read
	return r.ReadCloser.Close()
}

func TestCancelStopsDownloadsAndHashing(t *testing.T) {
	slow := &slowStore{Store: env.store, opened: make(chan struct{}, 1), closed: make(chan int64, 1)}
	const queue = "e2e-cpu-slow-disk"
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleCPU, CPUTaskQueue: queue, Store: slow})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()

	big := randomBody(64 << 20)
	connected := make(chan string, 10)
	gone := make(chan time.Time, 10)
	s := newSite(t, map[string]http.HandlerFunc{
		"/big":    func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) },
		"/drip/1": drip(connected, gone),
		"/drip/2": drip(connected, gone),
	})
	run := start(t, workflows.Input{URLs: []string{s.URL + "/big", s.URL + "/drip/1", s.URL + "/drip/2"}, CPUTaskQueue: queue})
	for _, ch := range []string{"download 1", "download 2", "hash"} {
		var ok bool
		if ch == "hash" {
			select {
			case <-slow.opened:
				ok = true
			case <-time.After(time.Minute):
			}
		} else {
			select {
			case <-connected:
				ok = true
			case <-time.After(time.Minute):
			}
		}
		if !ok {
			t.Fatalf("%s never started", ch)
		}
	}
	canceledAt := time.Now()
	if err := env.client.CancelWorkflow(context.Background(), run.GetID(), run.GetRunID()); err != nil {
		t.Fatal(err)
	}
	_, err = result(t, run)
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("got %v, want canceled", err)
	}
	expectGone(t, gone, 2, canceledAt, "the cancel")
	select {
	case n := <-slow.closed:
		if n >= int64(len(big)) {
			t.Errorf("the hash read the whole body (%d bytes) despite the cancel", n)
		}
		if d := time.Since(canceledAt); d > 10*time.Second {
			t.Errorf("the hash stopped %v after the cancel", d)
		}
	default:
		t.Errorf("the workflow ended while the hash was still reading")
	}
	assertNoBlobs(t, run)
	recordHistory(t, run, "canceled")
}

func TestBadInputIsRejectedBeforeAnyRequest(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{})
	ok := s.URL + "/page"
	cases := []struct{ raw, want string }{
		{`{"urls":[]}`, "urls: must list at least one URL"},
		{`{"urls":["` + ok + `","ftp://127.0.0.1/f"]}`, `urls[1]`},
		{`{"urls":["` + ok + `"],"max_in_flight":0}`, "max_in_flight"},
		{`{"urls":["` + ok + `"],"attempt_timeout":"soon"}`, "attempt_timeout"},
		{`{"urls":"` + ok + `"}`, "urls: wrong JSON type"},
		{`{"urls":["` + ok + `"],"retries":3}`, `unknown field "retries"`},
		{`{"urls":["` + ok + `"],"mode":"yolo"}`, "mode"},
		// Headers the fetcher owns: named with the field they are in.
		{`{"urls":["` + ok + `"],"headers":{"Host":"other.example"}}`, "headers: Host"},
		{`{"urls":["` + ok + `"],"headers":{"Content-Length":"5"}}`, "headers: Content-Length"},
		{`{"urls":["` + ok + `"],"headers":{"Connection":"close"}}`, "headers: Connection: batchfetch sends this header itself (hop-by-hop)"},
		{`{"urls":["` + ok + `",{"url":"` + ok + `","headers":{"Range":"bytes=0-"}}]}`, "urls[1]: headers: Range"},
	}
	for _, tc := range cases {
		run := start(t, json.RawMessage(tc.raw))
		_, err := result(t, run)
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != workflows.InvalidInputType || !appErr.NonRetryable() {
			t.Errorf("%s: got %v, want a non-retryable InvalidInput", tc.raw, err)
			continue
		}
		if !strings.Contains(appErr.Message(), tc.want) {
			t.Errorf("%s: message %q does not mention %q", tc.raw, appErr.Message(), tc.want)
		}
	}
	if n := s.totalHits(); n != 0 {
		t.Errorf("the server saw %d requests, want none", n)
	}
}

func TestHashWaitsForACPUWorker(t *testing.T) {
	const queue = "e2e-cpu-late"
	s := newSite(t, map[string]http.HandlerFunc{
		"/page": func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "body") },
	})
	run := start(t, workflows.Input{URLs: []string{s.URL + "/page"}, CPUTaskQueue: queue})

	// The fetch worker does its part; the hash waits on the CPU queue.
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := env.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		pending := d.GetPendingActivities()
		if len(pending) == 1 && pending[0].GetActivityType().GetName() == "HashChunk" {
			if st := d.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				t.Fatalf("workflow status %v, want running", st)
			}
			if pending[0].GetState() != enumspb.PENDING_ACTIVITY_STATE_SCHEDULED {
				t.Fatalf("hash is %v with no CPU worker, want scheduled", pending[0].GetState())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw the hash waiting; pending: %v", pending)
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view, not synchronising
	}

	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleCPU, CPUTaskQueue: queue, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("body"))
	if r := out.Results[0]; r.Outcome != workflows.OutcomeOK || r.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("got %+v, want ok with the body's sha256", r)
	}
}

// TestReadmeInput sends the README's `temporal workflow start --input` JSON
// as raw JSON, the way the temporal CLI does, pointed at a local server.
func TestReadmeInput(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cli := range []string{"temporal workflow start", "tctl workflow start"} {
		t.Run(strings.Fields(cli)[0], func(t *testing.T) {
			m := regexp.MustCompile(`(?s)` + cli + `.*?--input '([^']+)'`).FindSubmatch(readme)
			if m == nil {
				t.Fatalf("README.md has no `%s ... --input '...'` line", cli)
			}
			readmeInput(t, m[1])
		})
	}
}

func readmeInput(t *testing.T, raw []byte) {
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("README input is not JSON: %v", err)
	}
	urls, _ := in["urls"].([]any)
	if len(urls) == 0 {
		t.Fatal("README input has no urls")
	}
	routes := map[string]http.HandlerFunc{}
	var paths []string
	for _, u := range urls {
		path := regexp.MustCompile(`^https?://[^/]+`).ReplaceAllString(u.(string), "")
		paths = append(paths, path)
		routes[path] = func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) }
	}
	s := newSite(t, routes)
	for i, path := range paths {
		urls[i] = s.URL + path
	}
	in["cpu_task_queue"] = cpuTaskQueue
	body, _ := json.Marshal(in)
	run := start(t, json.RawMessage(body))
	out, err := result(t, run)
	if err != nil {
		t.Fatalf("README input failed: %v", err)
	}
	if out.OK != len(urls) {
		t.Errorf("ok=%d, want %d: %+v", out.OK, len(urls), out.Results)
	}
}

// waitForCheckpoint polls the server's view of a pending activity until
// its last heartbeat satisfies ok.
func waitForCheckpoint(t *testing.T, run client.WorkflowRun, activityID, what string, ok func(*commonpb.Payloads) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := env.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityId() == activityID && pa.GetHeartbeatDetails() != nil && ok(pa.GetHeartbeatDetails()) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never checkpointed %s", activityID, what)
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view of the heartbeat
	}
}

// replaceFetchWorker stops pool, cutting off the attempts it runs as a
// deploy or a crash-restart does, and starts another fetch worker on
// queue in its place (stopped when the test ends).
func replaceFetchWorker(t *testing.T, pool *workers.Pools, queue string) {
	t.Helper()
	pool.Stop()
	next, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(next.Stop)
}

// historyLength counts the events of a run.
func historyLength(t *testing.T, id, runID string) (int, []*historypb.HistoryEvent) {
	t.Helper()
	iter := env.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	return len(events), events
}

func TestLargeBatchIsSplitAndWrittenToAFile(t *testing.T) {
	s := newSite(t, nil)
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) })
	n := workflows.ChunksPerPart*workflows.StagedChunkSize + 550 // two parts
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/page/%d", s.URL, i)
	}
	urls[4321] = s.URL + "/page/4321?dup" // the same path twice is fine
	// A list this long goes through the blob store, not the workflow input.
	w, err := env.store.Create(context.Background(), "inputs/large.txt")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "# a large batch")
	for _, u := range urls {
		fmt.Fprintln(w, u)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	defer env.store.DeletePrefix(context.Background(), "inputs") //nolint:errcheck
	run := start(t, workflows.Input{URLsFile: "inputs/large.txt", MaxInFlight: 100})
	out, err := result(t, run)
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	if out.Total != n || out.OK != n || out.Failed != 0 || out.Results != nil || out.ResultsFile != workflows.ResultsKey(run.GetRunID()) {
		t.Fatalf("got total %d ok %d failed %d file %q inline %d", out.Total, out.OK, out.Failed, out.ResultsFile, len(out.Results))
	}
	r, err := env.store.Open(context.Background(), out.ResultsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	for i := 0; ; i++ {
		var res workflows.Result
		if err := dec.Decode(&res); err == io.EOF {
			if i != n {
				t.Errorf("results file has %d lines, want %d", i, n)
			}
			break
		} else if err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(strings.TrimSuffix(urls[i], "?dup"), s.URL)
		sum := sha256.Sum256([]byte(path))
		if res.URL != urls[i] || res.Outcome != workflows.OutcomeOK || res.SHA256 != hex.EncodeToString(sum[:]) || res.Attempts != 1 {
			t.Fatalf("line %d: %+v, want %s ok with sha256 %x", i, res, urls[i], sum)
		}
	}
	// No run comes near Temporal's limits.
	events, history := historyLength(t, run.GetID(), run.GetRunID())
	children := 0
	for _, ev := range history {
		if started := ev.GetChildWorkflowExecutionStartedEventAttributes(); started != nil {
			children++
			c, _ := historyLength(t, started.GetWorkflowExecution().GetWorkflowId(), started.GetWorkflowExecution().GetRunId())
			t.Logf("part %s: %d events", started.GetWorkflowExecution().GetWorkflowId(), c)
			if children == 1 {
				recordRun(t, started.GetWorkflowExecution().GetWorkflowId(), started.GetWorkflowExecution().GetRunId(), "large-part")
			}
			events = max(events, c)
		}
	}
	if children != 2 {
		t.Errorf("%d child workflows, want 2", children)
	}
	if events > 10240 {
		t.Errorf("a run has %d history events, over the 10,240 warning line", events)
	}
	assertNoBlobs(t, run)
	recordHistory(t, run, "large")
}

func TestChunkResumesAfterWorkerRestart(t *testing.T) {
	const queue = "e2e-restart"
	blocked := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	hits := map[string]int{}
	s := newSite(t, nil)
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		first := hits[r.URL.Path] == 1
		mu.Unlock()
		if r.URL.Path == "/page/5" && first {
			once.Do(func() { close(blocked) })
			<-r.Context().Done() // hangs until the worker goes away
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	// 1,000 URLs: chunks of 10, max_in_flight 8.
	urls := make([]string, 1000)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/page/%d", s.URL, i)
	}
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: "restart-" + fmt.Sprint(time.Now().UnixNano()), TaskQueue: queue},
		workflows.WorkflowName, workflows.Input{URLs: urls, MaxInFlight: 8, CPUTaskQueue: cpuTaskQueue})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(time.Minute):
		t.Fatal("URL 5 was never requested")
	}
	// Wait for chunk 0's checkpoint to hold URLs 0 to 4.
	waitForCheckpoint(t, run, "fetch-0", "its first 5 URLs", func(details *commonpb.Payloads) bool {
		var cp struct {
			Done []struct {
				I int `json:"i"`
			}
		}
		if converter.GetDefaultDataConverter().FromPayloads(details, &cp) != nil {
			return false
		}
		have := map[int]bool{}
		for _, d := range cp.Done {
			have[d.I] = true
		}
		return have[0] && have[1] && have[2] && have[3] && have[4]
	})
	replaceFetchWorker(t, pool, queue) // the worker goes away mid-chunk
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != len(urls) {
		t.Errorf("ok=%d, want %d", out.OK, len(urls))
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range 5 {
		if n := hits[fmt.Sprintf("/page/%d", i)]; n != 1 {
			t.Errorf("URL %d was fetched %d times: the retry did not resume from the checkpoint", i, n)
		}
	}
	if n := hits["/page/5"]; n != 2 {
		t.Errorf("URL 5 was requested %d times, want 2 (cut off, then retried)", n)
	}
	sum := sha256.Sum256([]byte("/page/5"))
	if r := out.Results[5]; r.SHA256 != hex.EncodeToString(sum[:]) || r.Attempts != 2 {
		t.Errorf("URL 5: %+v, want its sha256 after 2 attempts", r)
	}
	assertNoBlobs(t, run)
}

// resumeAfterWorkerStop serves a body of size whose first request sends
// sentFirst bytes and then stalls; once the URL's checkpoint holds them, it
// replaces the fetch worker. It returns the URL's result, the Range headers
// the server saw, and the body.
func resumeAfterWorkerStop(t *testing.T, queue string, size, sentFirst, maxAttempts int) (workflows.Result, []string, []byte) {
	t.Helper()
	body := randomBody(size)
	firstSent := make(chan struct{})
	var mu sync.Mutex
	var ranges []string
	s := newSite(t, map[string]http.HandlerFunc{
		"/big": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			first := len(ranges) == 1
			mu.Unlock()
			w.Header().Set("ETag", `"big-v1"`)
			if first { // sentFirst bytes, then nothing until the worker goes away
				w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				_, _ = w.Write(body[:sentFirst])
				w.(http.Flusher).Flush()
				close(firstSent)
				<-r.Context().Done()
				return
			}
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
		},
	})
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: fmt.Sprint("resume-", time.Now().UnixNano()), TaskQueue: queue},
		workflows.WorkflowName, workflows.Input{URLs: []string{s.URL + "/big"}, CPUTaskQueue: cpuTaskQueue, AttemptTimeout: "5m", MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstSent:
	case <-time.After(time.Minute):
		t.Fatal("the download never started")
	}
	// Wait for the checkpoint to hold what was sent, then take the worker away.
	waitForCheckpoint(t, run, "url-1", fmt.Sprintf("the first %d bytes", sentFirst), func(details *commonpb.Payloads) bool {
		var cp activities.URLCheckpoint
		return converter.GetDefaultDataConverter().FromPayloads(details, &cp) == nil && cp.Resume.Bytes == int64(sentFirst)
	})
	replaceFetchWorker(t, pool, queue)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	assertNoBlobs(t, run)
	mu.Lock()
	defer mu.Unlock()
	return out.Results[0], append([]string(nil), ranges...), body
}

func TestLargeBodyResumesAfterWorkerRestart(t *testing.T) {
	const sentFirst = 8 << 20
	r, ranges, body := resumeAfterWorkerStop(t, "e2e-resume", 64<<20, sentFirst, 0)
	sum := sha256.Sum256(body)
	if r.Outcome != workflows.OutcomeOK || r.SHA256 != hex.EncodeToString(sum[:]) || r.Size != int64(len(body)) {
		t.Errorf("got %+v, want the whole body's sha256", r)
	}
	if len(ranges) != 2 || ranges[1] != fmt.Sprintf("bytes=%d-", sentFirst) {
		t.Errorf("the server was asked for %q, want the whole body, then only the bytes after the first %d", ranges, sentFirst)
	}
	t.Logf("requests: %q", ranges)
}

// TestBatchOnAnObjectStore runs fetch and hash workers that share bodies
// through an object store (gocloud's in-memory bucket) instead of a
// directory: a large batch, so the staged URLs and results go there too.
func TestBatchOnAnObjectStore(t *testing.T) {
	store, err := blobstore.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	const queue, cpuQueue = "e2e-bucket", "e2e-bucket-cpu"
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, TaskQueue: queue, CPUTaskQueue: cpuQueue, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	s := newSite(t, nil)
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) })
	urls := make([]string, workflows.InlineLimit+50)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/obj/%d", s.URL, i)
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuQueue})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != len(urls) || out.ResultsFile == "" {
		t.Fatalf("got %+v", out)
	}
	r, err := store.Open(context.Background(), out.ResultsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	for i := range urls {
		var res workflows.Result
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		sum := sha256.Sum256([]byte(fmt.Sprintf("/obj/%d", i)))
		if res.URL != urls[i] || res.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("line %d: %+v", i, res)
		}
	}
	if _, err := store.Open(context.Background(), activities.BodyKey(workflows.BlobPrefix(run.GetRunID()), 0)); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("a body was left in the bucket: %v", err)
	}
}
