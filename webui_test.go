package batchfetch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/devserver"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// failingSite answers /ok/N with a page, /missing/N with a 404, and holds
// /held/N until release is called.
func failingSite(t *testing.T) (site *httptest.Server, release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	site = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/missing/"):
			http.NotFound(w, r)
			return
		case strings.HasPrefix(r.URL.Path, "/held/"):
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "<html><title>%s</title></html>", r.URL.Path)
	}))
	t.Cleanup(release)
	t.Cleanup(site.Close)
	return site, release
}

// currentDetails is what the Web UI shows as the batch's current details.
func currentDetails(t *testing.T, c client.Client, id string) string {
	t.Helper()
	v, err := c.QueryWorkflow(context.Background(), id, "", "__temporal_workflow_metadata")
	if err != nil {
		t.Fatalf("metadata query: %v", err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	return md.GetCurrentDetails()
}

// searchCounts reads a batch's BatchFetchOK, BatchFetchFailed and
// BatchFetchTotal (-1: not set).
func searchCounts(t *testing.T, c client.Client, id string) (counts [3]int64) {
	t.Helper()
	d, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	fields := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	for i, name := range []string{workflows.AttrOK, workflows.AttrFailed, workflows.AttrTotal} {
		counts[i] = -1
		if p, ok := fields[name]; ok {
			if err := converter.GetDefaultDataConverter().FromPayload(p, &counts[i]); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	return counts
}

// listed waits until the workflow list's query finds exactly the batches
// of ids it should (visibility follows the batch's own state shortly).
func listed(t *testing.T, query string, ids []string, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := env.client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		got := map[string]bool{}
		for _, e := range resp.GetExecutions() {
			got[e.GetExecution().GetWorkflowId()] = true
		}
		ok := true
		for _, id := range ids {
			ok = ok && got[id] == want[id]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s found %v, want %v among %v", query, got, want, ids)
		}
		time.Sleep(200 * time.Millisecond) // visibility is updated asynchronously
	}
}

// A staged batch shows its counts and last failures in the Web UI while
// it runs, keeps its counts in search attributes the list can filter on,
// and lists its first failures in its output although its results are in
// a file.
func TestAStagedBatchShowsItsFailures(t *testing.T) {
	site, release := failingSite(t)
	in := workflows.Input{Process: "html", MaxInFlight: 10}
	for i := range 30 {
		in.URLs = append(in.URLs, fmt.Sprintf("%s/missing/%d", site.URL, i))
	}
	for i := range 5 {
		in.URLs = append(in.URLs, fmt.Sprintf("%s/held/%d", site.URL, i))
	}
	run := start(t, in)

	// While five pages are held, the current details name the failures.
	deadline := time.Now().Add(time.Minute)
	var details string
	for !strings.Contains(details, "30 failed") {
		if time.Now().After(deadline) {
			t.Fatalf("the current details never showed the 30 failures; last:\n%s", details)
		}
		time.Sleep(100 * time.Millisecond) // the details move as chunks end
		details = currentDetails(t, env.client, run.GetID())
	}
	for _, want := range []string{"**30 of 35 URLs done**: 0 ok, 30 failed", "Last failures", "/missing/", "http_error 404"} {
		if !strings.Contains(details, want) {
			t.Errorf("current details lack %q:\n%s", want, details)
		}
	}
	release()

	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if out.ResultsFile == "" || out.Results != nil {
		t.Fatalf("the batch was not staged: %+v", out)
	}
	if out.OK != 5 || out.Failed != 30 || len(out.Failures) != workflows.FailureSample {
		t.Fatalf("ok %d failed %d, %d failures listed; want 5, 30, %d", out.OK, out.Failed, len(out.Failures), workflows.FailureSample)
	}
	for i, f := range out.Failures {
		if f.URL != in.URLs[i] || f.Outcome != workflows.OutcomeHTTPError || f.Status != 404 || f.Error == "" {
			t.Errorf("failure %d is %+v, want %s, http_error 404 with its error", i, f, in.URLs[i])
		}
	}
	if got := searchCounts(t, env.client, run.GetID()); got != [3]int64{5, 30, 35} {
		t.Errorf("search attributes ok, failed, total: %v, want 5, 30, 35", got)
	}
	if details := currentDetails(t, env.client, run.GetID()); !strings.Contains(details, "**35 of 35 URLs done**: 5 ok, 30 failed") {
		t.Errorf("the final details say:\n%s", details)
	}

	// A clean batch beside it: the list's query tells them apart.
	clean := start(t, workflows.Input{URLs: []string{site.URL + "/ok/1"}})
	if _, err := result(t, clean); err != nil {
		t.Fatal(err)
	}
	ids := []string{run.GetID(), clean.GetID()}
	listed(t, "BatchFetchFailed > 0", ids, map[string]bool{run.GetID(): true})
	listed(t, "BatchFetchFailed = 0 AND BatchFetchTotal = 1", ids, map[string]bool{clean.GetID(): true})
}

// In a namespace without the counts' search attributes (a user's own
// cluster), a batch runs as ever: no workflow task fails, and the output
// and the Web UI's details are all there.
func TestABatchRunsWhereTheSearchAttributesAreMissing(t *testing.T) {
	srv, err := devserver.Start(devserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pools, err := workers.Start(c, workers.Config{HTTP: local, TaskQueue: taskQueue, CPUTaskQueue: cpuTaskQueue, Store: store, StoreLocation: "plain",
		Deployment: workers.Deployment{MakeCurrent: workers.MakeCurrentAlways}})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Stop()
	site, _ := failingSite(t)
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: taskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/ok/1", site.URL + "/missing/1"}, CPUTaskQueue: cpuTaskQueue})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatal(err)
	}
	if out.OK != 1 || out.Failed != 1 || len(out.Failures) != 1 || out.Failures[0].URL != site.URL+"/missing/1" {
		t.Errorf("output %+v", out)
	}
	iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED {
			t.Errorf("a workflow task failed: %v", ev.GetWorkflowTaskFailedEventAttributes().GetFailure().GetMessage())
		}
	}
	if got := searchCounts(t, c, run.GetID()); got != [3]int64{-1, -1, -1} {
		t.Errorf("search attributes %v in a namespace without them", got)
	}
	if details := currentDetails(t, c, run.GetID()); !strings.Contains(details, "**2 of 2 URLs done**: 1 ok, 1 failed") || !strings.Contains(details, "/missing/1") {
		t.Errorf("details:\n%s", details)
	}
}
