package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// fakes stands in for the activities; each URL's path says what happens.
type fakes struct {
	mu         sync.Mutex
	fetched    map[int]int // URL index -> times fetched
	removed    []string
	slots      int // concurrency of the fetch chunks running now
	maxSlots   int
	hashQueues map[string]bool
	staged     map[int][]string // chunk -> URLs
	chunkFiles map[int][]activities.Result
	stopped    map[int][]activities.Result // chunk -> RecordChunkFailure's file
	assembled  []activities.Result
	// work: runs (by first URL) whose bodies were fetched, hashed and
	// removed (RemoveWork), and removals of runs not yet hashed.
	fetchedWork, hashedWork, removedWork map[int]bool
	removedEarly                         []int
	startsAfterRemoval                   int // fetches started once some bodies were removed
	// backlog, hashDelay: what the fetch workers say of their backlog
	// bound, and how long a hash takes; unhashed and maxUnhashed: bytes
	// fetched and not yet hashed, now and at most when a fetch started.
	backlog               int64
	hashDelay             time.Duration
	unhashed, maxUnhashed int64
}

func newFakes() *fakes {
	return &fakes{fetched: map[int]int{}, hashQueues: map[string]bool{}, staged: map[int][]string{}, chunkFiles: map[int][]activities.Result{}, stopped: map[int][]activities.Result{},
		fetchedWork: map[int]bool{}, hashedWork: map[int]bool{}, removedWork: map[int]bool{}}
}

func (f *fakes) FetchChunk(ctx context.Context, req activities.FetchChunkRequest) (*activities.FetchChunkResult, error) {
	tasks := req.URLs
	if tasks == nil {
		f.mu.Lock()
		for i, u := range f.staged[req.Chunk] {
			tasks = append(tasks, activities.URLTask{Index: req.First + i, URL: u})
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.slots += req.Concurrency
	f.maxSlots = max(f.maxSlots, f.slots)
	f.maxUnhashed = max(f.maxUnhashed, f.unhashed)
	if len(f.removedWork) > 0 {
		f.startsAfterRemoval++
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.slots -= req.Concurrency
		f.mu.Unlock()
	}()
	out := &activities.FetchChunkResult{Backlog: f.backlog}
	defer func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.fetchedWork[req.First] = true
		f.unhashed += bodyBytes(out.Items)
	}()
	for i, t := range tasks {
		switch {
		case strings.HasSuffix(t.URL, "/chunk-dies"):
			// The activity itself fails for good (say its worker keeps
			// crashing on it): no word on any of its URLs.
			return nil, temporal.NewNonRetryableApplicationError("fetch worker exploded", "Exploded", nil)
		case strings.HasSuffix(t.URL, "/stall"):
			// The chunk times out; its last heartbeat had finished the
			// URLs before this one.
			var cp activities.FetchCheckpoint
			for _, d := range tasks[:i] {
				cp.Done = append(cp.Done, activities.Fetched{Index: d.Index, URL: d.URL, Status: 200, Attempts: 1,
					Blob: activities.BodyKey(req.Prefix, d.Index), Size: int64(len(d.URL))})
			}
			return nil, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil, cp)
		}
	}
	for _, t := range tasks {
		f.mu.Lock()
		f.fetched[t.Index]++
		f.mu.Unlock()
		it := activities.Fetched{Index: t.Index, URL: t.URL, Attempts: 1, Status: 200}
		switch {
		case strings.HasSuffix(t.URL, "/missing"):
			it.Outcome, it.Status, it.Error = activities.OutcomeHTTPError, 404, "HTTP 404 Not Found"
		case strings.HasSuffix(t.URL, "/down"):
			it.Outcome, it.Status, it.Attempts, it.Error = activities.OutcomeHTTPError, 503, 3, "HTTP 503 Service Unavailable"
		case strings.HasSuffix(t.URL, "/hang"):
			<-ctx.Done()
			it.Outcome, it.Status, it.Error = activities.OutcomeCanceled, 0, "canceled"
			out.Items = append(out.Items, it)
			for _, rest := range tasks[len(out.Items):] {
				out.Items = append(out.Items, activities.Fetched{Index: rest.Index, URL: rest.URL, Outcome: activities.OutcomeCanceled})
			}
			return nil, temporal.NewCanceledError(*out)
		case strings.HasSuffix(t.URL, "/overlap"):
			time.Sleep(20 * time.Millisecond) // long enough for the allowed chunks to overlap
		}
		if it.Outcome == "" {
			it.Blob, it.Size = activities.BodyKey(req.Prefix, t.Index), int64(len(t.URL))
			if strings.Contains(t.URL, "/mib") {
				it.Size = 1 << 20
			}
		}
		out.Items = append(out.Items, it)
	}
	return out, nil
}

// FetchURL is FetchChunk for one URL, answering as the real one does: a
// URL that ends without a body fails the activity, its word in the details.
func (f *fakes) FetchURL(ctx context.Context, req activities.FetchURLRequest) (*activities.FetchChunkResult, error) {
	out, err := f.FetchChunk(ctx, activities.FetchChunkRequest{Prefix: req.Prefix, URLs: []activities.URLTask{req.Task}, First: req.Task.Index, Concurrency: 1, Policy: req.Policy})
	if err != nil {
		return nil, err
	}
	if word := out.Items[0]; word.Outcome != "" {
		return nil, temporal.NewApplicationErrorWithOptions(word.Error, "HTTPError", temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{word}})
	}
	return out, nil
}

func (f *fakes) HashChunk(ctx context.Context, req activities.HashChunkRequest) (*activities.HashChunkResult, error) {
	f.mu.Lock()
	f.hashQueues[activity.GetInfo(ctx).TaskQueue] = true
	f.mu.Unlock()
	time.Sleep(f.hashDelay)
	f.mu.Lock()
	f.unhashed -= bodyBytes(req.Items)
	if len(req.Items) > 0 {
		f.hashedWork[req.Items[0].Index] = true
	}
	f.mu.Unlock()
	out := &activities.HashChunkResult{}
	var results []activities.Result
	for _, it := range req.Items {
		if strings.HasSuffix(it.URL, "/hash-dies") {
			return nil, temporal.NewNonRetryableApplicationError("cpu worker exploded", "Exploded", nil)
		}
	}
	for _, it := range req.Items {
		r := it.Final()
		if it.Outcome == "" {
			r.Outcome, r.SHA256 = activities.OutcomeOK, "sum-of-"+it.Blob
			out.OK++
		} else {
			out.Failed++
			if out.FirstFailed == nil {
				rr := r
				out.FirstFailed = &rr
			}
		}
		results = append(results, r)
	}
	if req.Staged {
		f.mu.Lock()
		f.chunkFiles[req.Chunk] = results
		f.mu.Unlock()
	} else {
		out.Results = results
	}
	return out, nil
}

func (f *fakes) StageURLs(_ context.Context, req activities.StageRequest) (*activities.StageResult, error) {
	for i, u := range req.URLs {
		if err := activities.CheckURL(u); err != nil {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("urls[%d]: %v", i, err), activities.InvalidInputType, nil)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, u := range req.URLs {
		f.staged[i/req.ChunkSize] = append(f.staged[i/req.ChunkSize], u)
	}
	return &activities.StageResult{Count: len(req.URLs), Chunks: len(f.staged)}, nil
}

func (f *fakes) AssembleResults(_ context.Context, req activities.AssembleRequest) (*activities.AssembleResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	known := map[int]activities.Result{}
	for _, k := range req.Known {
		known[k.Index] = k.Result
	}
	out := &activities.AssembleResult{Key: req.Dest}
	for c := 0; c < req.Chunks; c++ {
		rs, ok := f.chunkFiles[c]
		if !ok {
			rs, ok = f.stopped[c]
		}
		if !ok {
			for i, u := range f.staged[c] {
				r, ok := known[c*req.ChunkSize+i]
				if ok && r.URL == "" {
					r.URL = u
				}
				if !ok {
					r = activities.Result{URL: u, Outcome: activities.OutcomeCanceled}
					for _, fc := range req.Failed {
						if c >= fc.From && c < fc.To {
							r.Outcome, r.Error = fc.Outcome, fc.Error
						}
					}
				}
				rs = append(rs, r)
			}
		}
		for _, r := range rs {
			if r.Outcome == activities.OutcomeOK {
				out.OK++
			} else {
				out.Failed++
			}
		}
		f.assembled = append(f.assembled, rs...)
	}
	return out, nil
}

// RecordChunkFailure stands in for the activity of that name.
func (f *fakes) RecordChunkFailure(_ context.Context, req activities.ChunkFailure) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.staged[req.Chunk] {
		if strings.HasSuffix(u, "/unrecordable") {
			return temporal.NewNonRetryableApplicationError("blob store refused", "Refused", nil)
		}
	}
	known := map[int]activities.Fetched{}
	for _, it := range req.Items {
		known[it.Index] = it
	}
	var rs []activities.Result
	for i, u := range f.staged[req.Chunk] {
		r := activities.Result{Outcome: req.Outcome, Error: req.Error}
		if it, ok := known[req.First+i]; ok {
			r = it.Final()
			if it.Outcome == "" {
				r.Outcome, r.Error = req.Outcome, req.Error
			}
		}
		r.URL = u
		rs = append(rs, r)
	}
	f.stopped[req.Chunk] = rs
	return nil
}

// fetchCount is how often URL index was fetched (activities may still be
// finishing when a canceled workflow has returned).
func (f *fakes) fetchCount(index int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetched[index]
}

// RemoveWork records which runs' bodies were removed, and those removed
// before their hash.
func (f *fakes) RemoveWork(_ context.Context, req activities.RemoveWorkRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, first := range req.Firsts {
		if !f.hashedWork[first] {
			f.removedEarly = append(f.removedEarly, first)
		}
		f.removedWork[first] = true
	}
	return nil
}

func bodyBytes(items []activities.Fetched) int64 {
	var n int64
	for _, it := range items {
		if it.Outcome == "" && !it.NotModified {
			n += it.Size
		}
	}
	return n
}

func (f *fakes) RemoveBlobs(_ context.Context, prefix string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, prefix)
	return nil
}

func newEnv(t *testing.T, part ...func(workflow.Context, PartInput) (*PartOutput, error)) (*testsuite.TestWorkflowEnvironment, *fakes) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	f := newFakes()
	for name, fn := range map[string]any{
		"FetchChunk": f.FetchChunk, "FetchURL": f.FetchURL, "HashChunk": f.HashChunk, "StageURLs": f.StageURLs,
		"AssembleResults": f.AssembleResults, "RemoveBlobs": f.RemoveBlobs, "RemoveInput": f.RemoveBlobs, "RecordChunkFailure": f.RecordChunkFailure,
		"RemoveWork": f.RemoveWork, activities.FetchChunkWithRequest: func(ctx context.Context, req activities.FetchChunkRequest) (*activities.FetchChunkResult, error) {
			return f.FetchChunk(ctx, req) // a function of its own: see activities.RegisterFetcher
		},
		activities.FetchURLWithRequest: func(ctx context.Context, req activities.FetchURLRequest) (*activities.FetchChunkResult, error) {
			return f.FetchURL(ctx, req)
		},
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	partFn := BatchFetchPart
	if len(part) > 0 {
		partFn = part[0]
	}
	env.RegisterWorkflowWithOptions(partFn, workflow.RegisterOptions{Name: PartWorkflowName})
	env.SetTestTimeout(2 * time.Minute)
	return env, f
}

func TestCollectReportsEveryURLInOrder(t *testing.T) {
	env, f := newEnv(t)
	urls := []string{"http://a.example/1", "http://a.example/missing", "http://a.example/2", "http://a.example/down", "http://a.example/1"}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
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
	}{{OutcomeOK, 200, 1}, {OutcomeHTTPError, 404, 1}, {OutcomeOK, 200, 1}, {OutcomeHTTPError, 503, 3}, {OutcomeOK, 200, 1}}
	if len(out.Results) != len(urls) {
		t.Fatalf("got %d results, want %d", len(out.Results), len(urls))
	}
	for i, w := range want {
		r := out.Results[i]
		if r.URL != urls[i] || r.Outcome != w.outcome || r.Status != w.status || r.Attempts != w.attempts {
			t.Errorf("result %d: got %+v, want url %s outcome %s status %d attempts %d", i, r, urls[i], w.outcome, w.status, w.attempts)
		}
	}
	prefix := BlobPrefix("default-test-run-id")
	if out.Results[2].SHA256 != "sum-of-"+activities.BodyKey(prefix, 2) {
		t.Errorf("sha256 of result 2 = %q, want the hash of body 2", out.Results[2].SHA256)
	}
	if out.OK != 3 || out.Failed != 2 || out.Total != 5 || out.ResultsFile != "" {
		t.Errorf("ok=%d failed=%d total=%d file=%q, want 3, 2, 5 and inline results", out.OK, out.Failed, out.Total, out.ResultsFile)
	}
	if len(f.hashQueues) != 1 || !f.hashQueues[CPUTaskQueue] {
		t.Errorf("hashes ran on %v, want only %s", f.hashQueues, CPUTaskQueue)
	}
	if len(f.removed) != 1 || f.removed[0] != prefix {
		t.Errorf("blobs removed: %v, want the batch's prefix once", f.removed)
	}
}

func TestMaxInFlightBoundsConcurrentFetches(t *testing.T) {
	for _, tc := range []struct{ urls, maxInFlight int }{{12, 3}, {400, 20}, {3000, 40}} {
		t.Run(fmt.Sprint(tc.urls), func(t *testing.T) {
			env, f := newEnv(t)
			var urls []string
			for range tc.urls {
				urls = append(urls, "http://a.example/overlap")
			}
			env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: tc.maxInFlight})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			if f.maxSlots > tc.maxInFlight || f.maxSlots < tc.maxInFlight/2 {
				t.Errorf("%d fetches ran at once, want up to max_in_flight %d", f.maxSlots, tc.maxInFlight)
			}
		})
	}
}

func TestFailFastCancelsSiblingsAndNamesTheURL(t *testing.T) {
	env, f := newEnv(t)
	urls := []string{"http://a.example/hang", "http://b.example/hang", "http://a.example/missing", "http://a.example/1"}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, Mode: ModeFailFast, MaxInFlight: 3})
	err := env.GetWorkflowError()
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != BatchFailedType {
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
	if f.fetchCount(3) != 0 {
		t.Errorf("the URL after the failure was fetched")
	}
	if len(f.removed) != 1 {
		t.Errorf("blobs removed %d times, want once", len(f.removed))
	}
}

func TestInvalidInputFetchesNothing(t *testing.T) {
	env, f := newEnv(t)
	env.ExecuteWorkflow(BatchFetch, Input{URLs: []string{"http://a.example/1", "gopher://b.example/"}})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != InvalidInputType || !appErr.NonRetryable() {
		t.Fatalf("got %v, want a non-retryable InvalidInput", err)
	}
	if !strings.Contains(appErr.Message(), "urls[1]") {
		t.Errorf("message %q does not name urls[1]", appErr.Message())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
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
	want := Progress{Total: 3, Done: 2, OK: 1, Failed: 1, InFlight: 1, MaxInFlight: DefaultMaxInFlight}
	recent := mid.Recent
	mid.Recent = nil
	if !reflect.DeepEqual(mid, want) {
		t.Errorf("progress %+v, want %+v", mid, want)
	}
	if len(recent) != 1 || recent[0].URL != "http://a.example/missing" || recent[0].Outcome != OutcomeHTTPError {
		t.Errorf("recent failures %+v, want the missing page's", recent)
	}
}

// A large batch is staged, split into child workflows, and written to a
// results file: every URL exactly once, in input order.
func TestLargeBatchIsSplitAndWrittenInOrder(t *testing.T) {
	env, f := newEnv(t)
	n := 2*ChunksPerPart*StagedChunkSize + 550 // three parts, the last one short
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.example/%d", i)
	}
	urls[777] = "http://a.example/missing"
	var parts []string
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		parts = append(parts, info.WorkflowExecution.ID)
	})
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: 200})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.Results != nil || out.ResultsFile != ResultsKey("default-test-run-id") || out.Total != n || out.OK != n-1 || out.Failed != 1 {
		t.Errorf("got total %d ok %d failed %d file %q (%d inline), want %d, %d, 1, %q", out.Total, out.OK, out.Failed, out.ResultsFile, len(out.Results), n, n-1, ResultsKey("default-test-run-id"))
	}
	if len(parts) != 3 {
		t.Errorf("ran %d child workflows, want 3", len(parts))
	}
	if len(f.assembled) != n {
		t.Fatalf("results file has %d lines, want %d", len(f.assembled), n)
	}
	for i, r := range f.assembled {
		if r.URL != urls[i] {
			t.Fatalf("line %d is %s, want %s", i, r.URL, urls[i])
		}
	}
	if f.assembled[777].Outcome != OutcomeHTTPError {
		t.Errorf("line 777: %+v", f.assembled[777])
	}
	for i := range n {
		if c := f.fetchCount(i); c != 1 {
			t.Fatalf("URL %d fetched %d times", i, c)
		}
	}
	if f.maxSlots > 200 {
		t.Errorf("%d fetches at once, over max_in_flight 200", f.maxSlots)
	}
}

func TestLargeFailFastStopsEveryPart(t *testing.T) {
	env, f := newEnv(t)
	n := 3 * ChunksPerPart * StagedChunkSize
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.example/%d", i)
	}
	urls[12345] = "http://a.example/missing"
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, Mode: ModeFailFast})
	var appErr *temporal.ApplicationError
	if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != BatchFailedType || !strings.Contains(appErr.Message(), "http://a.example/missing") {
		t.Fatalf("got %v, want BatchFailed naming the URL", err)
	}
	var fetchedIdx []int
	f.mu.Lock()
	for i := range f.fetched {
		fetchedIdx = append(fetchedIdx, i)
	}
	f.mu.Unlock()
	sort.Ints(fetchedIdx)
	if last := fetchedIdx[len(fetchedIdx)-1]; last >= 2*ChunksPerPart*StagedChunkSize {
		t.Errorf("fetched URL %d: the third part ran after the second one failed", last)
	}
	if len(f.assembled) != n || f.assembled[12345].Outcome != OutcomeHTTPError || f.assembled[n-1].Outcome != OutcomeCanceled {
		t.Errorf("results file: %d lines, line 12345 %+v, last %+v", len(f.assembled), f.assembled[12345], f.assembled[n-1])
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{temporal.NewApplicationError("boom", "Whatever"), OutcomeError},
		{temporal.NewCanceledError(), OutcomeCanceled},
		{errors.New("other"), OutcomeError},
	}
	for _, tc := range cases {
		if got, _ := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
