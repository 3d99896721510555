package workflows

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/activities"
)

// fakes stands in for the activities: each URL's path says what happens.
type fakes struct {
	mu       sync.Mutex
	fetched  []string
	removed  []string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
	hashQ    []string
}

func (f *fakes) Fetch(ctx context.Context, req activities.FetchRequest) (*activities.FetchResult, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	f.mu.Lock()
	f.fetched = append(f.fetched, req.URL)
	f.mu.Unlock()
	attempt := activity.GetInfo(ctx).Attempt
	fail := func(status int, retryable bool) error {
		return temporal.NewApplicationErrorWithOptions("HTTP "+http(status), activities.ErrHTTPStatus, temporal.ApplicationErrorOptions{
			NonRetryable: !retryable, Details: []any{activities.FailureDetails{Status: status, Attempt: attempt}},
		})
	}
	switch {
	case strings.HasSuffix(req.URL, "/missing"):
		return nil, fail(404, false)
	case strings.HasSuffix(req.URL, "/flaky") && attempt < 3:
		return nil, fail(503, true)
	case strings.HasSuffix(req.URL, "/down"):
		return nil, fail(503, true)
	case strings.HasSuffix(req.URL, "/hang"):
		<-ctx.Done()
		return nil, ctx.Err()
	case strings.HasSuffix(req.URL, "/overlap"):
		// Long enough for every fetch the workflow allows to overlap.
		time.Sleep(50 * time.Millisecond)
	}
	return &activities.FetchResult{Blob: req.Blob, Status: 200, Size: int64(len(req.URL)), Attempt: attempt}, nil
}

func http(status int) string {
	return map[int]string{404: "404 Not Found", 503: "503 Service Unavailable"}[status]
}

func (f *fakes) Hash(ctx context.Context, req activities.HashRequest) (*activities.HashResult, error) {
	f.mu.Lock()
	f.hashQ = append(f.hashQ, activity.GetInfo(ctx).TaskQueue)
	f.mu.Unlock()
	return &activities.HashResult{SHA256: "sum-of-" + req.Blob, Size: 42}, nil
}

func (f *fakes) RemoveBlobs(_ context.Context, prefix string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, prefix)
	return nil
}

func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *fakes) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := &fakes{}
	env.RegisterActivityWithOptions(f.Fetch, activity.RegisterOptions{Name: "Fetch"})
	env.RegisterActivityWithOptions(f.Hash, activity.RegisterOptions{Name: "Hash"})
	env.RegisterActivityWithOptions(f.RemoveBlobs, activity.RegisterOptions{Name: "RemoveBlobs"})
	env.SetTestTimeout(30 * time.Second)
	return env, f
}

func TestCollectReportsEveryURLInOrder(t *testing.T) {
	env, f := newEnv(t)
	urls := []string{"http://a.example/1", "http://a.example/missing", "http://a.example/flaky", "http://a.example/down", "http://a.example/1"}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxAttempts: 3, InitialBackoff: "10ms"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		outcome  string
		status   int
		attempts int
	}{{OutcomeOK, 200, 1}, {OutcomeHTTPError, 404, 1}, {OutcomeOK, 200, 3}, {OutcomeHTTPError, 503, 3}, {OutcomeOK, 200, 1}}
	if len(out.Results) != len(urls) {
		t.Fatalf("got %d results, want %d", len(out.Results), len(urls))
	}
	for i, w := range want {
		r := out.Results[i]
		if r.URL != urls[i] || r.Outcome != w.outcome || r.Status != w.status || r.Attempts != w.attempts {
			t.Errorf("result %d: got %+v, want url %s outcome %s status %d attempts %d", i, r, urls[i], w.outcome, w.status, w.attempts)
		}
		if (r.Outcome == OutcomeOK) != (r.SHA256 != "") {
			t.Errorf("result %d: sha256 %q with outcome %s", i, r.SHA256, r.Outcome)
		}
	}
	if out.Results[0].SHA256 != "sum-of-"+BlobPrefix("default-test-run-id")+"/000000" {
		t.Errorf("sha256 of result 0 = %q, want the hash of blob 0", out.Results[0].SHA256)
	}
	if out.Results[1].Error != "HTTP 404 Not Found" {
		t.Errorf("error of 404 = %q", out.Results[1].Error)
	}
	if out.OK != 3 || out.Failed != 2 {
		t.Errorf("counts ok=%d failed=%d, want 3 and 2", out.OK, out.Failed)
	}
	for _, q := range f.hashQ {
		if q != CPUTaskQueue {
			t.Errorf("hash ran on task queue %q, want %q", q, CPUTaskQueue)
		}
	}
	if len(f.removed) != 1 || f.removed[0] != BlobPrefix("default-test-run-id") {
		t.Errorf("blobs removed: %v, want the batch's prefix once", f.removed)
	}
}

func TestMaxInFlightBoundsConcurrentFetches(t *testing.T) {
	env, f := newEnv(t)
	var urls []string
	for range 12 {
		urls = append(urls, "http://a.example/overlap")
	}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: 3})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := f.maxSeen.Load(); got > 3 || got < 2 {
		t.Errorf("at most %d fetches ran at once, want 3 (max_in_flight)", got)
	}
}

func TestFailFastCancelsSiblingsAndNamesTheURL(t *testing.T) {
	env, f := newEnv(t)
	urls := []string{"http://a.example/hang", "http://b.example/hang", "http://a.example/missing", "http://a.example/1"}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, Mode: ModeFailFast, MaxInFlight: 3})
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrBatchFailed {
		t.Fatalf("got %v, want a BatchFailed ApplicationError", err)
	}
	if !strings.Contains(appErr.Message(), "http://a.example/missing failed (http_error 404)") {
		t.Errorf("message %q does not name the failing URL", appErr.Message())
	}
	var out Output
	if err := appErr.Details(&out); err != nil {
		t.Fatalf("details: %v", err)
	}
	for i, want := range []string{OutcomeCanceled, OutcomeCanceled, OutcomeHTTPError, OutcomeCanceled} {
		if out.Results[i].Outcome != want {
			t.Errorf("result %d outcome %s, want %s", i, out.Results[i].Outcome, want)
		}
	}
	if out.Results[3].Attempts != 0 {
		t.Errorf("the URL after the failure was started (%d attempts)", out.Results[3].Attempts)
	}
	if len(f.removed) != 1 {
		t.Errorf("blobs removed %d times, want once", len(f.removed))
	}
}

func TestInvalidInputFetchesNothing(t *testing.T) {
	env, f := newEnv(t)
	env.ExecuteWorkflow(BatchFetch, Input{URLs: []string{"http://a.example/1", "gopher://b.example/"}})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != ErrInvalidInput || !appErr.NonRetryable() {
		t.Fatalf("got %v, want a non-retryable InvalidInput", err)
	}
	if !strings.Contains(appErr.Message(), "urls[1]") {
		t.Errorf("message %q does not name urls[1]", appErr.Message())
	}
	if len(f.fetched) != 0 || len(f.removed) != 0 {
		t.Errorf("fetched %v and removed %v, want nothing done", f.fetched, f.removed)
	}
}

func TestCancelStopsFetchesAndStillCleansUp(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	env.ExecuteWorkflow(BatchFetch, Input{URLs: []string{"http://a.example/hang", "http://b.example/hang", "http://c.example/1"}, MaxInFlight: 2})
	var canceled *temporal.CanceledError
	if err := env.GetWorkflowError(); !errors.As(err, &canceled) {
		t.Fatalf("got %v, want canceled", err)
	}
	if len(f.removed) != 1 {
		t.Errorf("blobs removed %d times after cancel, want once", len(f.removed))
	}
}

func TestProgressQuery(t *testing.T) {
	env, _ := newEnv(t)
	var mid Progress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(ProgressQuery)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(&mid); err != nil {
			t.Error(err)
		}
	}, time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Second)
	env.ExecuteWorkflow(BatchFetch, Input{URLs: []string{"http://a.example/1", "http://a.example/hang", "http://a.example/missing"}})
	want := Progress{Total: 3, Done: 2, OK: 1, Failed: 1, InFlight: 1}
	if mid != want {
		t.Errorf("progress %+v, want %+v", mid, want)
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{temporal.NewApplicationError("HTTP 404", activities.ErrHTTPStatus), OutcomeHTTPError},
		{temporal.NewApplicationError("reset", activities.ErrNetwork), OutcomeError},
		{temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil), OutcomeTimeout},
		{temporal.NewCanceledError(), OutcomeCanceled},
		{errors.New("other"), OutcomeError},
	}
	for _, tc := range cases {
		if got, _ := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
