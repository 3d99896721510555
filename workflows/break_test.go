package workflows

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
)

// In a rolling deploy, a POST's one-URL activity first goes to a worker of
// an earlier release, which does not know FetchURLWithRequest and gives the
// attempt back without sending anything. The README: "it is retried on a
// worker that knows requests". The POST was never made: it must be made
// (once) by the worker that knows it, not end as "cut off".
func TestBreakAPostGivenBackByAnEarlierWorkerIsMadeOnce(t *testing.T) {
	var mu sync.Mutex
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
		_, _ = io.WriteString(w, "created")
	}))
	defer srv.Close()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hc, err := activities.NewHTTPClient(activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	real := &activities.Fetcher{Client: hc, Store: store}

	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	f := newFakes()
	calls := 0
	fetchURL := func(ctx context.Context, req activities.FetchURLRequest) (*activities.FetchChunkResult, error) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 { // what a worker of an earlier release answers
			return nil, temporal.NewApplicationError("unable to find activityType="+activities.FetchURLWithRequest, "ActivityNotRegisteredError")
		}
		return real.FetchURL(ctx, req)
	}
	for name, fn := range map[string]any{
		"FetchChunk": f.FetchChunk, "FetchURL": f.FetchURL, "HashChunk": f.HashChunk, "StageURLs": f.StageURLs,
		"AssembleResults": f.AssembleResults, "RemoveBlobs": f.RemoveBlobs, "RemoveInput": f.RemoveBlobs, "RecordChunkFailure": f.RecordChunkFailure,
		"RemoveWork": f.RemoveWork, activities.FetchChunkWithRequest: f.FetchChunk, activities.FetchURLWithRequest: fetchURL,
	} {
		env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
	env.RegisterWorkflowWithOptions(BatchFetchPart, workflow.RegisterOptions{Name: PartWorkflowName})
	env.SetTestTimeout(time.Minute)
	env.ExecuteWorkflow(BatchFetch, Input{URLs: []string{srv.URL + "/orders"}, RequestFields: activities.RequestFields{Method: "POST", Body: &activities.BodyValue{Text: "order=1"}}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	_ = env.GetWorkflowResult(&out)
	if posts != 1 || len(out.Results) != 1 || out.Results[0].Outcome != activities.OutcomeOK {
		t.Errorf("the server got %d POSTs; results %+v, want one POST and ok", posts, out.Results)
	}
}
