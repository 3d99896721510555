package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// A batch's outcome is right on every path: a failure that is not a
// cancellation never passes as success.

func TestCollectMarksTheURLsOfAFailedChunk(t *testing.T) {
	env, _ := newEnv(t)
	urls := []string{"http://a.example/1", "http://a.example/chunk-dies", "http://a.example/hash-dies", "http://a.example/2"}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	want := []struct{ outcome, errText string }{
		{OutcomeOK, ""},
		{OutcomeError, "fetch worker exploded"},
		{OutcomeError, "hashing: "},
		{OutcomeOK, ""},
	}
	for i, w := range want {
		r := out.Results[i]
		if r.URL != urls[i] || r.Outcome != w.outcome || !strings.Contains(r.Error, w.errText) {
			t.Errorf("result %d: %+v, want %s with error containing %q", i, r, w.outcome, w.errText)
		}
		if strings.Contains(r.Error, "(type: ") || strings.Contains(r.Error, "retryable: ") {
			t.Errorf("result %d: the error %q carries the SDK's note on how it travelled", i, r.Error)
		}
	}
	if out.OK != 2 || out.Failed != 2 {
		t.Errorf("ok %d failed %d, want 2 and 2", out.OK, out.Failed)
	}
}

func TestFailFastStopsOnAFailedActivity(t *testing.T) {
	for _, bad := range []string{"chunk-dies", "hash-dies"} {
		t.Run(bad, func(t *testing.T) {
			env, _ := newEnv(t)
			urls := []string{"http://a.example/hang", "http://b.example/" + bad, "http://a.example/hang"}
			env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, Mode: ModeFailFast})
			var appErr *temporal.ApplicationError
			if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != BatchFailedType {
				t.Fatalf("got %v, want BatchFailed", err)
			}
			if !strings.Contains(appErr.Message(), "http://b.example/"+bad+" failed (error") {
				t.Errorf("message %q does not name the failed URL", appErr.Message())
			}
			var out Output
			if err := appErr.Details(&out); err != nil {
				t.Fatal(err)
			}
			for i, want := range []string{OutcomeCanceled, OutcomeError, OutcomeCanceled} {
				if out.Results[i].Outcome != want {
					t.Errorf("result %d: %+v, want %s", i, out.Results[i], want)
				}
			}
		})
	}
}

// A chunk that times out keeps the URLs its last heartbeat had finished:
// their bodies are hashed, and only the rest time out.
func TestTimedOutChunkKeepsWhatItsHeartbeatFinished(t *testing.T) {
	env, _ := newEnv(t)
	urls := make([]string, 300) // 3 URLs a chunk
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.example/%d", i)
	}
	urls[4] = "http://a.example/stall" // chunk 1: URLs 3, 4, 5
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if r := out.Results[3]; r.Outcome != OutcomeOK || r.SHA256 == "" {
		t.Errorf("URL 3, done before the timeout: %+v, want ok with its hash", r)
	}
	for _, i := range []int{4, 5} {
		if r := out.Results[i]; r.Outcome != OutcomeTimeout || r.URL != urls[i] {
			t.Errorf("URL %d: %+v, want timeout", i, r)
		}
	}
	if out.OK != 298 || out.Failed != 2 {
		t.Errorf("ok %d failed %d, want 298 and 2", out.OK, out.Failed)
	}
}

// explodingPart stands in for BatchFetchPart; the part numbered bad fails.
func explodingPart(bad int) func(workflow.Context, PartInput) (*PartOutput, error) {
	return func(ctx workflow.Context, in PartInput) (*PartOutput, error) {
		if in.Part == bad {
			return nil, temporal.NewNonRetryableApplicationError("part blew up", "Exploded", nil)
		}
		return BatchFetchPart(ctx, in)
	}
}

func largeURLs(n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.example/%d", i)
	}
	return urls
}

func TestFailedPartIsNotASuccess(t *testing.T) {
	const perPart = ChunksPerPart * StagedChunkSize
	n := 3 * perPart
	t.Run("collect", func(t *testing.T) {
		env, f := newEnv(t, explodingPart(1))
		env.ExecuteWorkflow(BatchFetch, Input{URLs: largeURLs(n), MaxInFlight: 400})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		var out Output
		if err := env.GetWorkflowResult(&out); err != nil {
			t.Fatal(err)
		}
		if out.OK != 2*perPart || out.Failed != perPart {
			t.Errorf("ok %d failed %d, want %d and %d: a failed part passed as success", out.OK, out.Failed, 2*perPart, perPart)
		}
		if len(f.assembled) != n {
			t.Fatalf("%d results, want %d", len(f.assembled), n)
		}
		for i, r := range f.assembled {
			inBad := i >= perPart && i < 2*perPart
			if inBad && (r.Outcome != OutcomeError || !strings.Contains(r.Error, "part blew up")) {
				t.Fatalf("result %d of the failed part: %+v", i, r)
			}
			if !inBad && r.Outcome != OutcomeOK {
				t.Fatalf("result %d: %+v, want ok (the parts after the failed one run)", i, r)
			}
		}
	})
	t.Run("fail_fast", func(t *testing.T) {
		env, f := newEnv(t, explodingPart(1))
		env.ExecuteWorkflow(BatchFetch, Input{URLs: largeURLs(n), MaxInFlight: 400, Mode: ModeFailFast})
		var appErr *temporal.ApplicationError
		if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != BatchFailedType || !strings.Contains(appErr.Message(), "part blew up") {
			t.Fatalf("got %v, want BatchFailed naming the part's error", err)
		}
		if c := f.fetchCount(n - 1); c != 0 {
			t.Errorf("the part after the failed one ran")
		}
	})
}

// A staged chunk that fails, and whose failure cannot be recorded in the
// blob store either, still reads as failed, not canceled.
func TestUnrecordedChunkFailureStillFails(t *testing.T) {
	env, f := newEnv(t)
	const c = StagedChunkSize
	urls := largeURLs(4 * c)
	urls[2*c+34] = "http://a.example/chunk-dies" // chunk 2
	urls[2*c+50] = "http://a.example/unrecordable"
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.OK != 3*c || out.Failed != c {
		t.Errorf("ok %d failed %d, want %d and %d", out.OK, out.Failed, 3*c, c)
	}
	for i := 2 * c; i < 3*c; i++ {
		if r := f.assembled[i]; r.Outcome != OutcomeError || !strings.Contains(r.Error, "fetch worker exploded") {
			t.Fatalf("URL %d: %+v, want the chunk's error", i, r)
		}
	}
}

// A staged fail_fast batch stopped by a chunk keeps every URL of that
// chunk's own word: a second 404 stays a 404, and a chunk whose fetch
// activity failed has its error on every URL.
func TestStagedFailFastKeepsTheStoppingChunksWords(t *testing.T) {
	t.Run("two 404s", func(t *testing.T) {
		env, f := newEnv(t)
		urls := largeURLs(1500)
		urls[3], urls[7] = "http://a.example/missing", "http://a.example/missing"
		env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, Mode: ModeFailFast})
		var appErr *temporal.ApplicationError
		if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != BatchFailedType {
			t.Fatalf("got %v, want BatchFailed", err)
		}
		for _, i := range []int{3, 7} {
			if r := f.assembled[i]; r.Outcome != OutcomeHTTPError || r.Status != 404 || r.URL != urls[i] {
				t.Errorf("URL %d: %+v, want its 404", i, r)
			}
		}
	})
	t.Run("chunk dies", func(t *testing.T) {
		env, f := newEnv(t)
		const c = StagedChunkSize
		urls := largeURLs(3 * c)
		urls[c+50] = "http://a.example/chunk-dies" // chunk 1
		env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, Mode: ModeFailFast})
		var appErr *temporal.ApplicationError
		want := fmt.Sprintf("URLs %d to %d failed (error): fetch worker exploded", c+1, 2*c)
		if err := env.GetWorkflowError(); !errors.As(err, &appErr) || appErr.Type() != BatchFailedType || !strings.Contains(appErr.Message(), want) {
			t.Fatalf("got %v, want BatchFailed naming the chunk's URLs and error", err)
		}
		for i := c; i < 2*c; i++ {
			if r := f.assembled[i]; r.Outcome != OutcomeError || !strings.Contains(r.Error, "fetch worker exploded") {
				t.Fatalf("URL %d: %+v, want the chunk's error", i, r)
			}
		}
	})
}

// A canceled batch returns what it had done: finished URLs stay finished.
func TestCancelKeepsFinishedResults(t *testing.T) {
	env, _ := newEnv(t)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	urls := []string{"http://a.example/1", "http://a.example/hang", "http://a.example/missing"}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
	var canceled *temporal.CanceledError
	err := env.GetWorkflowError()
	if !errors.As(err, &canceled) {
		t.Fatalf("got %v, want canceled", err)
	}
	out, ok := CanceledOutput(err)
	if !ok {
		t.Fatalf("the cancellation carries no output: %v", err)
	}
	for i, want := range []string{OutcomeOK, OutcomeCanceled, OutcomeHTTPError} {
		if out.Results[i].Outcome != want {
			t.Errorf("result %d: %+v, want %s", i, out.Results[i], want)
		}
	}
	if out.OK != 1 || out.Failed != 2 || out.Canceled != 1 {
		t.Errorf("ok %d failed %d canceled %d, want 1, 2 (one of them canceled) and 1", out.OK, out.Failed, out.Canceled)
	}
}

// sizes records the largest payload the data converter produced.
type sizes struct {
	converter.DataConverter
	mu       sync.Mutex
	largest  int
	largestV string
}

func (s *sizes) note(n int, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > s.largest {
		s.largest, s.largestV = n, fmt.Sprintf("%T", v)
	}
}

func (s *sizes) ToPayload(v any) (*commonpb.Payload, error) {
	p, err := s.DataConverter.ToPayload(v)
	if err == nil {
		s.note(p.Size(), v)
	}
	return p, err
}

func (s *sizes) ToPayloads(vs ...any) (*commonpb.Payloads, error) {
	p, err := s.DataConverter.ToPayloads(vs...)
	if err == nil {
		s.note(p.Size(), vs)
	}
	return p, err
}

// events bounds the history events of each run from what it does: every
// activity, child and signal counted with the workflow tasks it may cause.
type events struct {
	interceptor.WorkerInterceptorBase
	mu   sync.Mutex
	runs map[string]int // workflow ID -> events, at most
}

func (e *events) add(id string, n int) {
	e.mu.Lock()
	e.runs[id] += n
	e.mu.Unlock()
}

func (e *events) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &eventsIn{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, e: e}
}

type eventsIn struct {
	interceptor.WorkflowInboundInterceptorBase
	e  *events
	id string
}

func (i *eventsIn) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&eventsOut{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, in: i})
}

func (i *eventsIn) ExecuteWorkflow(ctx workflow.Context, in *interceptor.ExecuteWorkflowInput) (any, error) {
	i.id = workflow.GetInfo(ctx).WorkflowExecution.ID
	i.e.add(i.id, 8) // started, first and last workflow task, completed
	return i.Next.ExecuteWorkflow(ctx, in)
}

func (i *eventsIn) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	i.e.add(i.id, 1+3) // signaled, and a workflow task
	return i.Next.HandleSignal(ctx, in)
}

type eventsOut struct {
	interceptor.WorkflowOutboundInterceptorBase
	in *eventsIn
}

func (o *eventsOut) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	o.in.e.add(o.in.id, 3+3) // scheduled, started, closed; a workflow task
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

func (o *eventsOut) ExecuteChildWorkflow(ctx workflow.Context, childWorkflowType string, args ...any) workflow.ChildWorkflowFuture {
	o.in.e.add(o.in.id, 3+3+3) // initiated, started, closed; workflow tasks for both
	return o.Next.ExecuteChildWorkflow(ctx, childWorkflowType, args...)
}

func (o *eventsOut) SignalExternalWorkflow(ctx workflow.Context, workflowID, runID, signalName string, arg any) workflow.Future {
	o.in.e.add(o.in.id, 2+3) // initiated, signaled; a workflow task
	return o.Next.SignalExternalWorkflow(ctx, workflowID, runID, signalName, arg)
}

func (o *eventsOut) GetVersion(ctx workflow.Context, changeID string, minSupported, maxSupported workflow.Version) workflow.Version {
	o.in.e.add(o.in.id, 1) // a marker
	return o.Next.GetVersion(ctx, changeID, minSupported, maxSupported)
}

// TestMillionURLsAllFailingStayBounded runs a batch of a million URLs in
// which every chunk's fetch fails for good, each with a long error: no
// payload comes near Temporal's 2 MB limit and no run near the 10,240
// events at which Temporal warns, and every URL is accounted as failed.
func TestMillionURLsAllFailingStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("a million URLs")
	}
	const n = activities.MaxURLs
	chunks := (n + StagedChunkSize - 1) / StagedChunkSize
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	dc := &sizes{DataConverter: converter.GetDefaultDataConverter()}
	env.SetDataConverter(dc)
	ev := &events{runs: map[string]int{}}
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{ev}})
	env.SetTestTimeout(10 * time.Minute)

	longErr := strings.Repeat("the upstream proxy said no; ", 100) // 2.8 KB
	var mu sync.Mutex
	recorded := map[int]int{}
	var assembled activities.AssembleRequest
	for name, fn := range map[string]any{
		"StageURLs": func(context.Context, activities.StageRequest) (*activities.StageResult, error) {
			return &activities.StageResult{Count: n, Chunks: chunks}, nil
		},
		"FetchChunk": func(context.Context, activities.FetchChunkRequest) (*activities.FetchChunkResult, error) {
			return nil, temporal.NewNonRetryableApplicationError(longErr, "Upstream", nil)
		},
		"HashChunk": func(context.Context, activities.HashChunkRequest) (*activities.HashChunkResult, error) {
			return nil, errors.New("nothing was fetched: no hash should run")
		},
		"RecordChunkFailure": func(_ context.Context, req activities.ChunkFailure) error {
			mu.Lock()
			defer mu.Unlock()
			recorded[req.Chunk]++
			if req.Outcome != OutcomeError || !strings.Contains(req.Error, "the upstream proxy said no") {
				return fmt.Errorf("chunk %d recorded as %s: %q", req.Chunk, req.Outcome, req.Error)
			}
			return nil
		},
		"AssembleResults": func(_ context.Context, req activities.AssembleRequest) (*activities.AssembleResult, error) {
			mu.Lock()
			defer mu.Unlock()
			assembled = req
			return &activities.AssembleResult{Key: req.Dest, OK: 0, Failed: n}, nil
		},
		"RemoveBlobs": func(context.Context, string) error { return nil },
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	env.RegisterWorkflowWithOptions(BatchFetchPart, workflow.RegisterOptions{Name: PartWorkflowName})
	var parentEvents, partEvents int
	env.ExecuteWorkflow(BatchFetch, Input{URLsFile: "inputs/million.txt"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow failed: %v", err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if len(recorded) != chunks {
		t.Errorf("%d chunks recorded their failure, want all %d", len(recorded), chunks)
	}
	if len(assembled.Known) != 0 || len(assembled.Failed) != 0 {
		t.Errorf("the assemble request carries %d known results and %d failed runs, want none: every chunk has its file", len(assembled.Known), len(assembled.Failed))
	}
	if out.OK != 0 || out.Failed != n {
		t.Errorf("ok %d failed %d, want 0 and %d", out.OK, out.Failed, n)
	}
	// Temporal refuses payloads over 2 MB and warns at 10,240 events; the
	// bounds here are the figures the README quotes, with some room.
	if dc.largest > 4<<10 {
		t.Errorf("largest payload %d bytes (%s), want a few KB whatever the batch size", dc.largest, dc.largestV)
	}
	for id, n := range ev.runs {
		if limit := map[bool]int{true: 1300, false: 3000}[strings.Contains(id, "/part-")]; n > limit {
			t.Errorf("run %s: up to %d history events, over %d", id, n, limit)
		}
		if !strings.Contains(id, "/part-") {
			parentEvents = n
		} else {
			partEvents = max(partEvents, n)
		}
	}
	t.Logf("largest payload %d bytes (%s); at most %d events in the parent run, %d in a part; %d runs", dc.largest, dc.largestV, parentEvents, partEvents, len(ev.runs))
}

// Whenever inlineFits lets a batch run inline, its output stays under
// Temporal's 2 MB even if every URL fails with the longest error, made of
// the characters JSON escapes most; and an ordinary batch of 1,000 URLs
// still runs inline.
func TestInlineFitsBoundsTheOutput(t *testing.T) {
	worstErr := activities.TruncateError(strings.Repeat("<", 5000))
	for _, filler := range []string{"x", "&", "<>", `"\`, "é"} {
		url := "http://a.example/?" + strings.Repeat(filler, 600/len(filler))
		for n := 1; n <= InlineLimit; n += 37 {
			urls := make([]string, n)
			out := Output{Total: n, Failed: n}
			for i := range urls {
				urls[i] = url
				out.Results = append(out.Results, Result{URL: url, Outcome: OutcomeHTTPError, Status: 599, Size: 1 << 40,
					Attempts: 100, ElapsedMS: 1 << 40, SHA256: strings.Repeat("f", 64), Error: worstErr})
			}
			if !inlineFits(urls, false) {
				continue
			}
			p, err := converter.GetDefaultDataConverter().ToPayload(out)
			if err != nil {
				t.Fatal(err)
			}
			if p.Size() > 2<<20 {
				t.Fatalf("%d URLs of %q run inline, but their output can take %d bytes", n, filler, p.Size())
			}
		}
	}
	urls := make([]string, InlineLimit)
	for i := range urls {
		urls[i] = fmt.Sprintf("https://www.example.com/products/category-%d/item-%d?ref=batch&lang=en", i%50, i)
	}
	if !inlineFits(urls, false) {
		t.Errorf("1,000 ordinary URLs do not run inline")
	}
}

// A batch of long URLs is staged even under InlineLimit, so its output
// stays under Temporal's payload limit.
func TestLongURLsAreStaged(t *testing.T) {
	env, f := newEnv(t)
	urls := make([]string, InlineLimit)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.example/%d/%s", i, strings.Repeat("x", 600))
	}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil {
		t.Fatal(err)
	}
	if out.Results != nil || out.ResultsFile == "" || out.OK != InlineLimit || len(f.assembled) != InlineLimit {
		t.Errorf("got %d inline results, file %q, ok %d; want the results in a file", len(out.Results), out.ResultsFile, out.OK)
	}
}
