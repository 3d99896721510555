package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// stagedResults reads a staged chunk's results file.
func stagedResults(t *testing.T, e *fetchEnv, key string) []Result {
	t.Helper()
	r, err := e.store.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []Result
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var res Result
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

// A hash attempt that runs on after another attempt of the same hash has
// recorded the chunk's results, and the chunk's bodies were removed (a
// worker that was frozen past its heartbeat, then woke), leaves the
// recorded results as they are: it does not replace them with errors
// for the bodies it no longer finds.
func TestAStaleHashKeepsTheRecordedResults(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	}))
	defer srv.Close()
	for _, stopped := range []bool{false, true} {
		e := newFetchEnv(t, 0)
		ctx := context.Background()
		w, _ := e.store.Create(ctx, URLsKey("batches/r", 0))
		for i := range 3 {
			fmt.Fprintf(w, "%s/%d\n", srv.URL, i)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", Chunk: 0, Concurrency: 3, Policy: quick})
		req := HashChunkRequest{Prefix: "batches/r", Chunk: 0, Items: items, Staged: true}
		key := ResultsKey("batches/r", 0)
		if stopped {
			// The chunk's fetch was canceled: its record is the stopped file.
			if err := writeStopped(ctx, e.store, "batches/r", 0, 0, items); err != nil {
				t.Fatal(err)
			}
			key = StoppedResultsKey("batches/r", 0)
		} else if _, err := e.env.ExecuteActivity(e.h.HashChunk, req); err != nil {
			t.Fatal(err)
		}
		want := stagedResults(t, e, key)
		if _, err := e.env.ExecuteActivity(e.f.RemoveWork, RemoveWorkRequest{Prefix: "batches/r", Firsts: []int{0}}); err != nil {
			t.Fatal(err)
		}
		// The stale attempt.
		_, err := e.env.ExecuteActivity(e.h.HashChunk, req)
		if err == nil {
			t.Errorf("stopped %v: a hash of removed bodies succeeded", stopped)
		}
		if got := stagedResults(t, e, key); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("stopped %v: the results recorded were %v, a stale hash made them %v", stopped, want, got)
		}
		if _, err := e.store.Open(ctx, ResultsKey("batches/r", 0)); stopped && err == nil {
			t.Errorf("a stale hash wrote results over a stopped chunk's record")
		}
	}
}
