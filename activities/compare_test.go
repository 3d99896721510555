package activities

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A result is changed unless the earlier results said the same of its
// URL: the same body for a success, the same outcome and status for a
// failure; a URL they did not have is changed, a canceled one says
// nothing.
func TestChangedSince(t *testing.T) {
	sum := strings.Repeat("a", 64)
	other := strings.Repeat("b", 64)
	ok := Result{Outcome: OutcomeOK, Status: 200, SHA256: sum}
	notFound := Result{Outcome: OutcomeHTTPError, Status: 404, Error: "HTTP 404 Not Found"}
	for _, tc := range []struct {
		name    string
		earlier *Result // nil: not in the earlier results
		now     Result
		want    string
	}{
		{"ok, same body", &ok, ok, "false"},
		{"ok, another body", &ok, Result{Outcome: OutcomeOK, Status: 200, SHA256: other}, "true"},
		{"ok, new URL", nil, ok, "true"},
		{"ok, failed before", &notFound, ok, "true"},
		{"not_modified", &ok, Result{Outcome: OutcomeNotModified, Status: 304, SHA256: sum}, "false"},
		{"ok before, 404 now", &ok, notFound, "true"},
		{"404 both times", &notFound, Result{Outcome: OutcomeHTTPError, Status: 404, Error: "HTTP 404 gone"}, "false"},
		{"404 then 410", &notFound, Result{Outcome: OutcomeHTTPError, Status: 410}, "true"},
		{"404 then timeout", &notFound, Result{Outcome: OutcomeTimeout}, "true"},
		{"error both times, other text", &Result{Outcome: OutcomeError, Error: "dial: refused"}, Result{Outcome: OutcomeError, Error: "dial: reset"}, "false"},
		{"404, new URL", nil, notFound, "true"},
		{"404, canceled before", &Result{Outcome: OutcomeCanceled}, notFound, "true"},
		{"canceled now", &ok, Result{Outcome: OutcomeCanceled}, "nil"},
	} {
		var prev *Prev
		if tc.earlier != nil {
			prev = PrevOf(*tc.earlier)
		}
		got := "nil"
		if c := ChangedSince(prev, tc.now); c != nil {
			got = fmt.Sprint(*c)
		}
		if got != tc.want {
			t.Errorf("%s: changed %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A failure's Prev has no validators (a conditional request is made only
// for a body) and does not take the place of an earlier body's.
func TestFailedPrevStandsForNoBody(t *testing.T) {
	p := PrevOf(Result{Outcome: OutcomeHTTPError, Status: 404, ETag: `"e"`, SHA256: strings.Repeat("a", 64)})
	if p == nil || !p.Failed() || p.ETag != "" || p.SHA256 != "" || p.Status != 404 {
		t.Fatalf("prev of a 404: %+v", p)
	}
	body := PrevOf(Result{Outcome: OutcomeOK, SHA256: strings.Repeat("a", 64), ETag: `"e"`})
	if p.Replaces(body) || !body.Replaces(p) || !p.Replaces(nil) {
		t.Errorf("a failure replaces a body %v, a body a failure %v", p.Replaces(body), body.Replaces(p))
	}
}

// A not_modified result carries the earlier body's processed output when
// the batch runs a step; a result that has its own keeps it.
func TestNotModifiedCarriesTheEarlierProcessed(t *testing.T) {
	earlier := Result{URL: "http://127.0.0.1/a", Outcome: OutcomeOK, SHA256: strings.Repeat("a", 64), Processed: json.RawMessage(`{"title":"Home"}`)}
	e := EarlierOf(earlier)
	r := Result{URL: earlier.URL, Outcome: OutcomeNotModified, Status: 304, SHA256: earlier.SHA256}
	CompareWith(&r, e, true)
	if string(r.Processed) != `{"title":"Home"}` || r.Changed == nil || *r.Changed {
		t.Errorf("not_modified: processed %s changed %v, want the earlier title, unchanged", r.Processed, r.Changed)
	}
	r2 := Result{URL: earlier.URL, Outcome: OutcomeNotModified, Status: 304}
	CompareWith(&r2, e, false)
	if r2.Processed != nil {
		t.Errorf("a batch with no step got processed %s", r2.Processed)
	}
	bad := EarlierOf(Result{URL: earlier.URL, Outcome: OutcomeOK, SHA256: earlier.SHA256, Processed: json.RawMessage(`[1]`), ProcessedKey: "../etc/x"})
	if bad.Processed != nil || bad.ProcessedKey != "" {
		t.Errorf("carried what no result holds: %+v", bad)
	}
}
