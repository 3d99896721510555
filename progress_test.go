package batchfetch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/workflows"
)

// A batch staged for its process step moves its progress while it runs,
// not only at its end.
func TestAStagedBatchsProgressMovesWhileItRuns(t *testing.T) {
	gate := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	defer open()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		fmt.Sscanf(r.URL.Path, "/p/%d", &i)
		if i >= 150 { // the second half waits
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "<html><title>page %d</title></html>", i)
	}))
	defer site.Close()
	in := workflows.Input{Process: "html", MaxInFlight: 20}
	for i := range 300 {
		in.URLs = append(in.URLs, fmt.Sprintf("%s/p/%d", site.URL, i))
	}
	run := start(t, in)
	// While half the pages wait, the progress query shows the rest done.
	deadline := time.Now().Add(2 * time.Minute)
	var p workflows.Progress
	for {
		v, err := env.client.QueryWorkflow(context.Background(), run.GetID(), run.GetRunID(), workflows.ProgressQuery)
		if err == nil && v.Get(&p) == nil && p.Done >= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("progress %+v with half the pages held back: it does not move before the end", p)
		}
		time.Sleep(50 * time.Millisecond) // polling the query, as the starter does
	}
	if p.Done >= 300 || p.Total != 300 {
		t.Errorf("progress %+v, want part of 300 done", p)
	}
	open()
	out, err := result(t, run)
	if err != nil || out.OK != 300 || out.ResultsFile == "" {
		t.Fatalf("the batch: %+v, %v; want 300 ok in a results file", out, err)
	}
}
