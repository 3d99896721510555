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
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// A URL's own activity whose worker stops mid-attempt: these tests check
// that the attempt is made again once (as in a chunk), no more; that the
// body resumes where it was; and that a URL no worker took ends as a
// timeout of no attempt.

// TestStoppedLastAttemptIsMadeAgainOnce: max_attempts 3, two 503s, and the
// worker stops during the third attempt. The URL gets one more attempt
// (the cut-off one again), not a fresh set: 4 requests, 4 attempts.
func TestStoppedLastAttemptIsMadeAgainOnce(t *testing.T) {
	const queue = "e2e-stopped-last-attempt"
	third := make(chan struct{})
	var calls int
	var mu sync.Mutex
	s := newSite(t, map[string]http.HandlerFunc{
		"/busy": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n == 3 {
				close(third)
				<-r.Context().Done() // until its worker stops
				return
			}
			http.Error(w, "busy", http.StatusServiceUnavailable)
		},
	})
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store, StopTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{s.URL + "/busy"}, CPUTaskQueue: cpuTaskQueue, AttemptTimeout: "20s", MaxAttempts: 3, InitialBackoff: "100ms"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-third:
	case <-time.After(time.Minute):
		t.Fatal("the third attempt never came")
	}
	replaceFetchWorker(t, pool, queue)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	r := out.Results[0]
	if n := len(s.hitTimes("/busy")); r.Outcome != workflows.OutcomeHTTPError || r.Status != 503 || r.Attempts != 4 || n != 4 {
		t.Errorf("got %+v after %d requests; want http_error 503 after 4 attempts and 4 requests", r, n)
	}
	assertNoBlobs(t, run)
}

// TestStoppedOnlyAttemptResumesTheBody: max_attempts 1 and the worker
// stops mid-body. The attempt is made again on another worker, asking only
// for the rest of the body.
func TestStoppedOnlyAttemptResumesTheBody(t *testing.T) {
	const sentFirst = 4 << 20
	r, ranges, body := resumeAfterWorkerStop(t, "e2e-stopped-only-attempt", 16<<20, sentFirst, 1)
	if r.Outcome != workflows.OutcomeOK || r.Attempts != 2 || r.Size != int64(len(body)) {
		t.Errorf("got %+v, want ok after 2 attempts (the cut-off one made again)", r)
	}
	if len(ranges) != 2 || ranges[1] != fmt.Sprintf("bytes=%d-", sentFirst) {
		t.Errorf("the server was asked for %q, want the whole body, then the bytes after the first %d", ranges, sentFirst)
	}
}

// TestWaitForAFetchSlotIsNotAnAttempt: a worker that has one fetch slot
// (other batches' chunks hold the rest) runs five URLs of 3 s each with
// attempt_timeout 4s. Each waits its turn; no wait counts against its
// attempt or against the activity's start-to-close.
func TestWaitForAFetchSlotIsNotAnAttempt(t *testing.T) {
	const queue = "e2e-one-fetch-slot"
	httpClient, err := activities.NewHTTPClient(local)
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(env.client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.BatchFetch, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(&activities.Fetcher{Client: httpClient, Store: env.store, MaxConcurrent: 1})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	routes := map[string]http.HandlerFunc{}
	var urls []string
	for i := range 5 {
		path := fmt.Sprintf("/slow/%d", i)
		routes[path] = func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(3 * time.Second) // a slow page
			_, _ = io.WriteString(w, path)
		}
	}
	s := newSite(t, routes)
	for i := range 5 {
		urls = append(urls, fmt.Sprintf("%s/slow/%d", s.URL, i))
	}
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: cpuTaskQueue, AttemptTimeout: "4s", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range out.Results {
		if n := len(s.hitTimes(fmt.Sprintf("/slow/%d", i))); r.Outcome != workflows.OutcomeOK || r.Attempts != 1 || n != 1 {
			t.Errorf("URL %d: %+v after %d requests, want ok after 1", i, r, n)
		}
	}
}

// TestURLNoWorkerTookTimesOut: no fetch worker takes the URL's activity
// before its url_timeout: it ends as a timeout after no attempt, saying so.
func TestURLNoWorkerTookTimesOut(t *testing.T) {
	const queue = "e2e-no-fetch-worker"
	w := worker.New(env.client, queue, worker.Options{LocalActivityWorkerOnly: true}) // workflows only
	w.RegisterWorkflowWithOptions(workflows.BatchFetch, workflow.RegisterOptions{Name: workflows.WorkflowName})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	s := newSite(t, map[string]http.HandlerFunc{"/a": func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "a") }})
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{s.URL + "/a"}, CPUTaskQueue: cpuTaskQueue, URLTimeout: "2s", MaxAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	// The URL is decided (its timeout) before any fetch worker comes.
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := env.client.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), workflows.ProgressQuery)
		var p workflows.Progress
		if err == nil && v.Get(&p) == nil && p.Done == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the URL was not decided within a minute")
		}
		time.Sleep(100 * time.Millisecond) // polling the progress query
	}
	// A fetch worker, for the batch's cleanup.
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, Role: workers.RoleFetch, TaskQueue: queue, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Results[0]; r.Outcome != workflows.OutcomeTimeout || r.Attempts != 0 || r.Error != "URL timed out (url_timeout)" || r.ElapsedMS < 2000 || len(s.hitTimes("/a")) != 0 {
		t.Errorf("got %+v, want a timeout after 2s and no attempt", r)
	}
}
