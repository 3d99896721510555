package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/batchfetch/batchfetch/workflows"
)

func TestSummaryCountsRobotsDisallowed(t *testing.T) {
	out := workflows.Output{OK: 1, Failed: 3, Total: 4, Results: []workflows.Result{
		{Outcome: workflows.OutcomeOK}, {Outcome: workflows.OutcomeRobotsDisallowed},
		{Outcome: workflows.OutcomeRobotsDisallowed}, {Outcome: workflows.OutcomeCanceled},
	}}
	if got, want := summary(out), "1 ok, 2 failed (2 disallowed by robots.txt), 1 canceled"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	out = workflows.Output{OK: 2, Failed: 0, Total: 2, Results: []workflows.Result{{Outcome: workflows.OutcomeOK}, {Outcome: workflows.OutcomeOK}}}
	if got, want := summary(out), "2 ok, 0 failed"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

// --robots obey: the site's robots.txt is asked first, and the page it
// disallows is never requested; the table and the summary say why.
func TestRobotsFlagObeysTheSite(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		if r.URL.Path == "/robots.txt" {
			_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
			return
		}
		_, _ = io.WriteString(w, "page "+r.URL.Path)
	}))
	defer site.Close()
	r := starter(t, "", nil, "--robots", "obey", site.URL+"/open", site.URL+"/private/x")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1 (a URL not ok): %s", r.code, r.stderr)
	}
	for _, want := range []string{"robots_disallowed", "1 ok, 1 failed (1 disallowed by robots.txt)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the table lacks %q:\n%s", want, r.stdout)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(asked, "/private/x") || !slices.Contains(asked, "/robots.txt") {
		t.Errorf("the site was asked for %v: want robots.txt, and never /private/x", asked)
	}
	if r := starter(t, "", nil, "--robots", "yes", site.URL+"/open"); r.code != 2 || !strings.Contains(r.stderr, "robots") {
		t.Errorf("--robots yes: exit %d, %s; want 2 naming robots", r.code, r.stderr)
	}
}
