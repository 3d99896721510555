package batchfetch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// failPaths runs workers on a queue of their own whose fetch and hash
// activities fail for good at once on marked URLs (the real ones retry
// for minutes first): /chunk-dies fails its fetch activity, /hash-dies its
// hash activity, /hang blocks its fetch until the activity is canceled
// (hanging is closed when it starts). Everything else is the real thing.
func failPaths(t *testing.T, queue string) (hanging chan struct{}) {
	t.Helper()
	hanging = make(chan struct{})
	var once sync.Once
	httpClient, err := activities.NewHTTPClient(local)
	if err != nil {
		t.Fatal(err)
	}
	f := &activities.Fetcher{Client: httpClient, Store: env.store}
	h := &activities.Hasher{Store: env.store}
	w := worker.New(env.client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.BatchFetch, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterWorkflowWithOptions(workflows.BatchFetchPart, workflow.RegisterOptions{Name: workflows.PartWorkflowName})
	w.RegisterActivity(f)
	w.RegisterActivity(h)
	urlsOf := func(ctx context.Context, req activities.FetchChunkRequest) []string {
		var urls []string
		for _, u := range req.URLs {
			urls = append(urls, u.URL)
		}
		if len(urls) == 0 { // staged: read the chunk's file
			r, err := env.store.Open(ctx, activities.URLsKey(req.Prefix, req.Chunk))
			if err == nil {
				b, _ := io.ReadAll(r)
				r.Close()
				urls = strings.Fields(string(b))
			}
		}
		return urls
	}
	faults := func(ctx context.Context, urls []string) error {
		for _, u := range urls {
			switch {
			case strings.HasSuffix(u, "/chunk-dies"):
				return temporal.NewNonRetryableApplicationError("fetch worker exploded", "Exploded", nil)
			case strings.HasSuffix(u, "/hang"):
				once.Do(func() { close(hanging) })
				for ctx.Err() == nil {
					activity.RecordHeartbeat(ctx)
					time.Sleep(100 * time.Millisecond) // heartbeating until canceled
				}
				return ctx.Err()
			}
		}
		return nil
	}
	w.RegisterActivityWithOptions(func(ctx context.Context, req activities.FetchChunkRequest) (*activities.FetchChunkResult, error) {
		if err := faults(ctx, urlsOf(ctx, req)); err != nil {
			return nil, err
		}
		return f.FetchChunk(ctx, req)
	}, activity.RegisterOptions{Name: "FetchChunk", DisableAlreadyRegisteredCheck: true})
	w.RegisterActivityWithOptions(func(ctx context.Context, req activities.FetchURLRequest) (*activities.FetchChunkResult, error) {
		if err := faults(ctx, []string{req.Task.URL}); err != nil {
			return nil, err
		}
		return f.FetchURL(ctx, req)
	}, activity.RegisterOptions{Name: "FetchURL", DisableAlreadyRegisteredCheck: true})
	w.RegisterActivityWithOptions(func(ctx context.Context, req activities.HashChunkRequest) (*activities.HashChunkResult, error) {
		for _, it := range req.Items {
			if strings.HasSuffix(it.URL, "/hash-dies") {
				return nil, temporal.NewNonRetryableApplicationError("cpu worker exploded", "Exploded", nil)
			}
		}
		return h.HashChunk(ctx, req)
	}, activity.RegisterOptions{Name: "HashChunk", DisableAlreadyRegisteredCheck: true})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return hanging
}

func okSite(t *testing.T) *site {
	s := newSite(t, nil)
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/missing") {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	return s
}

// TestActivitiesThatFailForGood: a fetch activity and a hash activity that
// fail for good mark exactly their URLs, next to a 404 and an ok URL; the
// history is kept for the replay tests.
func TestActivitiesThatFailForGood(t *testing.T) {
	const queue = "e2e-failpaths"
	failPaths(t, queue)
	s := okSite(t)
	urls := []string{s.URL + "/ok", s.URL + "/chunk-dies", s.URL + "/hash-dies", s.URL + "/missing"}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: fmt.Sprint("failpaths-", time.Now().UnixNano()), TaskQueue: queue},
		workflows.WorkflowName, workflows.Input{URLs: urls, CPUTaskQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	recordHistory(t, run, "activities-fail")
	// outcomes
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	want := []string{"ok", "error: fetch worker exploded", "error: hashing: cpu worker exploded", "http_error: HTTP 404 Not Found"}
	for i, w := range want {
		r := out.Results[i]
		got := r.Outcome
		if r.Error != "" {
			got += ": " + r.Error
		}
		if !strings.HasPrefix(got, w) {
			t.Errorf("%s: %q, want %q", urls[i], got, w)
		}
	}
	if out.OK != 1 || out.Failed != 3 {
		t.Errorf("ok %d failed %d, want 1 and 3", out.OK, out.Failed)
	}
	// end of outcomes
}

// TestTerminatedPart: an operator terminates one part of a large batch;
// its unfinished URLs fail with the part's error, the other part runs,
// and a chunk whose fetch fails for good is recorded too. The histories
// are kept for the replay tests.
func TestTerminatedPart(t *testing.T) {
	const queue = "e2e-failparts"
	hanging := failPaths(t, queue)
	s := okSite(t)
	const c = workflows.StagedChunkSize
	const perPart = workflows.ChunksPerPart * c
	n := perPart + c + 200 // two parts, the second of two chunks
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/page/%d", s.URL, i)
	}
	urls[perPart/2+50] = s.URL + "/hang"                     // part 0, half way: after some are done
	urls[perPart+50] = s.URL + "/chunk-dies"                 // part 1, its first chunk
	urls[n-20] = fmt.Sprintf("%s/page/%d/missing", s.URL, n) // part 1, its second chunk
	w, err := env.store.Create(context.Background(), "inputs/failparts.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		fmt.Fprintln(w, u)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	defer env.store.DeletePrefix(context.Background(), "inputs/failparts.txt") //nolint:errcheck
	id := fmt.Sprint("failparts-", time.Now().UnixNano())
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: queue},
		workflows.WorkflowName, workflows.Input{URLsFile: "inputs/failparts.txt", CPUTaskQueue: queue, MaxInFlight: 100})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hanging:
	case <-time.After(2 * time.Minute):
		t.Fatal("part 0 never reached its hanging chunk")
	}
	if err := env.client.TerminateWorkflow(context.Background(), id+"/part-0", "", "stopped by an operator"); err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	recordHistory(t, run, "part-terminated")
	if d, err := env.client.DescribeWorkflowExecution(context.Background(), id+"/part-1", ""); err == nil {
		recordRun(t, id+"/part-1", d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "part-with-failed-chunk")
	}
	// outcomes
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	r, err := env.store.Open(context.Background(), out.ResultsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		var res workflows.Result
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		counts[res.Outcome]++
		switch {
		case i == n-20:
			if res.Outcome != workflows.OutcomeHTTPError {
				t.Errorf("line %d: %+v, want its 404", i, res)
			}
		case i >= perPart && i < perPart+c: // the chunk whose fetch failed
			if res.Outcome != workflows.OutcomeError || !strings.Contains(res.Error, "fetch worker exploded") {
				t.Errorf("line %d: %+v, want the chunk's error", i, res)
			}
		case res.Outcome == workflows.OutcomeCanceled:
			t.Fatalf("line %d: %+v: nothing was canceled", i, res)
		case i < perPart && res.Outcome != workflows.OutcomeOK &&
			!strings.Contains(res.Error, "part 0") && !strings.Contains(res.Error, "terminated"):
			t.Errorf("line %d: %+v, want ok or the terminated part's error", i, res)
		}
	}
	if counts[workflows.OutcomeError] < 2*c || counts[workflows.OutcomeOK] < 1000 || out.OK+out.Failed != n || out.OK != counts[workflows.OutcomeOK] {
		t.Errorf("outcomes %v, ok %d failed %d: want the hanging chunk and the failed chunk as errors, the chunks done before the terminate ok, the rest counted", counts, out.OK, out.Failed)
	}
	t.Logf("outcomes %v", counts)
	// end of outcomes
}

// slowDelete holds DeletePrefix until released: a disk that takes minutes
// to delete a large batch's files.
type slowDelete struct {
	blobstore.Store
	release chan struct{}
}

// DeletePrefix holds the removal of a batch's whole prefix (RemoveBlobs),
// not that of a hashed chunk's bodies (RemoveWork) on the way.
func (s *slowDelete) DeletePrefix(ctx context.Context, prefix string) error {
	if !strings.Contains(prefix, "/work/") {
		<-s.release
	}
	return s.Store.DeletePrefix(ctx, prefix)
}

// TestRemoveBlobsHeartbeatsWhileItDeletes: the batch's last step deletes
// its files; on a slow disk that outlasts the heartbeat timeout, so it must
// heartbeat, or the server times it out and runs it again and again. The
// server's view of the pending RemoveBlobs shows a heartbeat while the
// deletion is held.
func TestRemoveBlobsHeartbeatsWhileItDeletes(t *testing.T) {
	const queue = "e2e-slow-delete"
	store := &slowDelete{Store: env.store, release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(store.release)
		}
	}
	defer release()
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	s := okSite(t)
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{s.URL + "/a", s.URL + "/b"}, CPUTaskQueue: cpuTaskQueue})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := env.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		beat := false
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityType().GetName() == "RemoveBlobs" && pa.GetLastHeartbeatTime() != nil {
				beat = true
			}
		}
		if beat {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("RemoveBlobs recorded no heartbeat in a minute while deleting")
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view
	}
	release()
	var out workflows.Output
	if err := run.Get(context.Background(), &out); err != nil || out.OK != 2 {
		t.Fatalf("batch: %v, %+v", err, out)
	}
}

// TestURLWhoseWorkersWereAllLostStartsAnew: every attempt of a URL's own
// activity goes to a worker that stops mid-fetch (it says nothing of the
// URL). The URL is not failed for it: it gets a new activity, its attempts
// counted on, and ends ok.
func TestURLWhoseWorkersWereAllLostStartsAnew(t *testing.T) {
	const queue = "e2e-lost-workers"
	httpClient, err := activities.NewHTTPClient(local)
	if err != nil {
		t.Fatal(err)
	}
	f := &activities.Fetcher{Client: httpClient, Store: env.store}
	w := worker.New(env.client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.BatchFetch, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(f)
	var mu sync.Mutex
	var ids []string
	w.RegisterActivityWithOptions(func(ctx context.Context, req activities.FetchURLRequest) (*activities.FetchChunkResult, error) {
		mu.Lock()
		ids = append(ids, fmt.Sprintf("%s#%d", activity.GetInfo(ctx).ActivityID, activity.GetInfo(ctx).Attempt))
		mu.Unlock()
		if req.PriorAttempts == 0 {
			return nil, temporal.NewApplicationError("worker stopped mid-fetch", activities.WorkerStoppingType)
		}
		return f.FetchURL(ctx, req)
	}, activity.RegisterOptions{Name: "FetchURL", DisableAlreadyRegisteredCheck: true})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	s := okSite(t)
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{s.URL + "/a"}, CPUTaskQueue: cpuTaskQueue, MaxAttempts: 2, InitialBackoff: "10ms"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	recordHistory(t, run, "lost-workers")
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Results[0]; r.Outcome != workflows.OutcomeOK || r.Attempts != 3 {
		t.Errorf("got %+v, want ok after 3 attempts (2 lost, 1 that fetched)", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"url-1#1", "url-1#2", "url-1.2#1"}; !slices.Equal(ids, want) {
		t.Errorf("activity attempts %q, want %q", ids, want)
	}
}
