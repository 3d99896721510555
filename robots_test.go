package batchfetch_test

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/batchfetch/batchfetch/workflows"
)

// A batch that obeys robots.txt ends each URL it disallows as
// robots_disallowed, unrequested and counted in failed; its other URLs
// are fetched. A small batch (one activity per URL) and a larger one
// (chunks) say the same.
func TestRobotsDisallowedEndToEnd(t *testing.T) {
	page := func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "page "+r.URL.Path) }
	for _, n := range []int{3, 150} {
		t.Run(fmt.Sprintf("%d URLs", n), func(t *testing.T) {
			s := newSite(t, map[string]http.HandlerFunc{
				"/robots.txt": func(w http.ResponseWriter, r *http.Request) {
					_, _ = io.WriteString(w, "User-agent: batchfetch\nDisallow: /private\n")
				},
				"/public": page, "/private": page,
			})
			urls := []string{s.URL + "/private"}
			for len(urls) < n {
				urls = append(urls, s.URL+"/public")
			}
			run := start(t, workflows.Input{URLs: urls, Robots: workflows.RobotsObey})
			out, err := result(t, run)
			if err != nil {
				t.Fatalf("batch failed: %v", err)
			}
			if out.OK != n-1 || out.Failed != 1 || out.Total != n {
				t.Errorf("ok %d, failed %d, total %d; want %d, 1, %d", out.OK, out.Failed, out.Total, n-1, n)
			}
			r := out.Results[0]
			want := "disallowed by " + s.URL + "/robots.txt for batchfetch"
			if r.Outcome != workflows.OutcomeRobotsDisallowed || r.Status != 0 || r.Attempts != 0 || r.Error != want {
				t.Errorf("the disallowed URL: %+v, want outcome %s, error %q, 0 attempts", r, workflows.OutcomeRobotsDisallowed, want)
			}
			if len(out.Failures) != 1 || out.Failures[0].Outcome != workflows.OutcomeRobotsDisallowed {
				t.Errorf("failures: %+v", out.Failures)
			}
			if got := len(s.hitTimes("/private")); got != 0 {
				t.Errorf("/private was requested %d times", got)
			}
			if got := len(s.hitTimes("/robots.txt")); got != 1 {
				t.Errorf("robots.txt was asked %d times, want once", got)
			}
			for i, r := range out.Results[1:] {
				if r.Outcome != workflows.OutcomeOK {
					t.Errorf("URL %d: %s %s", i+1, r.Outcome, r.Error)
				}
			}
			assertNoBlobs(t, run)
			recordHistory(t, run, fmt.Sprintf("robots-obey-%d", n))
		})
	}
}

// A batch that leaves robots out asks no robots.txt.
func TestRobotsLeftOutAsksNone(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{
		"/private": func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "here") },
	})
	out, err := result(t, start(t, workflows.Input{URLs: []string{s.URL + "/private"}}))
	if err != nil || out.OK != 1 {
		t.Fatalf("got %+v, %v", out, err)
	}
	if got := len(s.hitTimes("/robots.txt")); got != 0 {
		t.Errorf("robots.txt asked %d times by a batch that left robots out", got)
	}
}
