package activities

import (
	"context"
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
	if p := PrevOf(Result{Outcome: strings.Repeat("x", 100), Status: 404}); p != nil {
		t.Errorf("an outcome no result has travels with its URL: %+v", p)
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

// The assembled results of a staged batch say, URL by URL, whether each
// changed since the earlier results staging joined to its chunk, over
// chunks, a chunk written in two parts and one that never wrote its file;
// a not_modified result carries the earlier processed output; the count
// of changed ones is theirs.
func TestAssembleComparesEachURLWithItsEarlierResult(t *testing.T) {
	e := newFetchEnv(t, 0)
	ctx := context.Background()
	u := func(i int) string { return fmt.Sprintf("http://a.example/%d", i) }
	sum := strings.Repeat("a", 64)
	ok := func(i int) Result { return Result{URL: u(i), Outcome: OutcomeOK, Status: 200, SHA256: sum} }
	failed := func(i, status int) Result { return Result{URL: u(i), Outcome: OutcomeHTTPError, Status: status} }
	withTitle := ok(4)
	withTitle.Processed = json.RawMessage(`{"title":"Kept"}`)
	previous := []Result{ok(0), failed(1, 404), failed(2, 404), failed(3, 404), withTitle, ok(6)}
	var urls []string
	for i := range 7 {
		urls = append(urls, u(i))
	}
	v, err := e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/r", URLs: urls, ChunkSize: 3, Previous: previous})
	if err != nil {
		t.Fatal(err)
	}
	var st StageResult
	_ = v.Get(&st)
	if st.Chunks != 3 || st.PrevParts == 0 {
		t.Fatalf("staged %+v, want 3 chunks and earlier results", st)
	}
	write := func(key string, results ...Result) {
		if err := writeResults(ctx, e.store, key, results); err != nil {
			t.Fatal(err)
		}
	}
	write(ResultsKey("batches/r", 0), failed(0, 404), failed(1, 404), failed(2, 500))
	write(ResultsKeyFrom("batches/r", 1, 0), failed(3, 404))
	write(ResultsKeyFrom("batches/r", 1, 4), Result{URL: u(4), Outcome: OutcomeNotModified, Status: 304, SHA256: sum}, failed(5, 404))
	// Chunk 2 never wrote its file: its part failed.
	v, err = e.env.ExecuteActivity(e.f.AssembleResults, AssembleRequest{Prefix: "batches/r", Chunks: 3, ChunkSize: 3, Dest: "results/r.jsonl",
		Failed: []FailedChunks{{From: 2, To: 3, Outcome: OutcomeError, Error: "part failed"}}, Compare: true, PrevParts: st.PrevParts, Carry: true})
	if err != nil {
		t.Fatal(err)
	}
	var ar AssembleResult
	_ = v.Get(&ar)
	r, err := e.store.Open(ctx, "results/r.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []string
	dec := json.NewDecoder(r)
	for dec.More() {
		var res Result
		if err := dec.Decode(&res); err != nil {
			t.Fatal(err)
		}
		c := "nil"
		if res.Changed != nil {
			c = fmt.Sprint(*res.Changed)
		}
		got = append(got, fmt.Sprintf("%s %s %d %s %s", strings.TrimPrefix(res.URL, "http://a.example/"), res.Outcome, res.Status, c, res.Processed))
	}
	want := []string{
		"0 http_error 404 true ",  // ok, now a 404
		"1 http_error 404 false ", // a 404 both times
		"2 http_error 500 true ",  // another status
		"3 http_error 404 false ",
		`4 not_modified 304 false {"title":"Kept"}`,
		"5 http_error 404 true ", // new
		"6 error 0 true ",        // ok, now its part failed
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("assembled:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ar.Changed != 4 || ar.NotModified != 1 {
		t.Errorf("counts: changed %d not_modified %d, want 4 and 1", ar.Changed, ar.NotModified)
	}
}
