package batchfetch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/workflows"
)

// TestStagedBatchWithFailuresIsExact runs a staged batch in which some
// URLs fail, one whole chunk of them: the results file has each URL's own
// outcome, and the counts say exactly how many failed.
func TestStagedBatchWithFailuresIsExact(t *testing.T) {
	s := newSite(t, nil)
	s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/gone/") {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})
	const n = 1500
	urls := make([]string, n)
	failed := 0
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/page/%d", s.URL, i)
		if (i >= 300 && i < 400) || i%97 == 0 { // chunk 3 all gone, and a few others
			urls[i] = fmt.Sprintf("%s/gone/%d", s.URL, i)
			failed++
		}
	}
	run := start(t, workflows.Input{URLs: urls, MaxInFlight: 50})
	out, err := result(t, run)
	if err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	if out.Total != n || out.OK != n-failed || out.Failed != failed {
		t.Fatalf("total %d ok %d failed %d, want %d, %d, %d", out.Total, out.OK, out.Failed, n, n-failed, failed)
	}
	r, err := env.store.Open(context.Background(), out.ResultsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dec := json.NewDecoder(r)
	for i := 0; i < n; i++ {
		var res workflows.Result
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		gone := strings.Contains(urls[i], "/gone/")
		if res.URL != urls[i] || (gone && (res.Outcome != workflows.OutcomeHTTPError || res.Status != 404)) || (!gone && res.Outcome != workflows.OutcomeOK) {
			t.Fatalf("line %d: %+v, want %s %s", i, res, urls[i], map[bool]string{true: "http_error 404", false: "ok"}[gone])
		}
	}
	assertNoBlobs(t, run)
	recordHistory(t, run, "staged-failures")
}
