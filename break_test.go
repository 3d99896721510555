package batchfetch_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// A batch of bare GETs must schedule its fetches as FetchChunk and
// FetchURL, the names every release's worker knows (and that histories
// recorded before requests existed hold: a replay must schedule the same
// types). A worker that runs workflows and fetches registers f.FetchChunk
// also under FetchChunkWithRequest; the SDK then resolves the workflow's
// ExecuteActivity(f.FetchChunk) to that alias. The one new name is the
// check of the counts' search attributes: a worker without it fails that
// check only, and the batch runs without the attributes.
func TestBreakABareGetBatchSchedulesThePlainActivityNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") }))
	defer srv.Close()
	const queue = "e2e-break-names"
	pool, err := workers.Start(env.client, workers.Config{Role: workers.RoleFetch, TaskQueue: queue, CPUTaskQueue: cpuTaskQueue, Store: env.store,
		HTTP: local, Deployment: workers.Deployment{MakeCurrent: workers.MakeCurrentAlways}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	var urls []string
	for i := range 30 { // chunks of several URLs, and a one-URL batch below
		urls = append(urls, fmt.Sprintf("%s/%d", srv.URL, i))
	}
	for _, in := range []workflows.Input{{URLs: urls, CPUTaskQueue: cpuTaskQueue}, {URLs: urls[:1], CPUTaskQueue: cpuTaskQueue}} {
		run := startOn(t, queue, in)
		if _, err := result(t, run); err != nil {
			t.Fatal(err)
		}
		_, events := historyLength(t, run.GetID(), run.GetRunID())
		for _, ev := range events {
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				if n := a.GetActivityType().GetName(); n != "FetchChunk" && n != "FetchURL" && n != "HashChunk" && n != "RemoveBlobs" && n != "RemoveWork" && n != "AssembleResults" && n != activities.SearchAttributesActivity {
					t.Errorf("%d URLs of bare GETs: the workflow scheduled %s", len(in.URLs), n)
				}
			}
		}
	}
}
