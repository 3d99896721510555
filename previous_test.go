package batchfetch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/workflows"
)

// changingSite serves pages that keep their ETag, change, send no
// validators, keep a Last-Modified, go missing after the first request,
// and are missing every time; it records the conditional headers and the bodies it sent.
type changingSite struct {
	*site
	mu      sync.Mutex
	served  map[string]int      // 200s with a body, by path
	headers map[string][]string // If-None-Match | If-Modified-Since, by path
}

func newChangingSite(t *testing.T) *changingSite {
	c := &changingSite{served: map[string]int{}, headers: map[string][]string{}}
	lm := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	note := func(r *http.Request) int {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.headers[r.URL.Path] = append(c.headers[r.URL.Path], r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
		return len(c.headers[r.URL.Path])
	}
	body := func(r *http.Request, w http.ResponseWriter, b string) {
		c.mu.Lock()
		c.served[r.URL.Path]++
		c.mu.Unlock()
		_, _ = w.Write([]byte(b))
	}
	c.site = newSite(t, map[string]http.HandlerFunc{
		"/keep": func(w http.ResponseWriter, r *http.Request) {
			note(r)
			w.Header().Set("ETag", `"k1"`)
			if r.Header.Get("If-None-Match") == `"k1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			body(r, w, "the same page")
		},
		"/change": func(w http.ResponseWriter, r *http.Request) {
			n := note(r)
			w.Header().Set("ETag", fmt.Sprintf(`"c%d"`, n))
			body(r, w, fmt.Sprintf("version %d", n))
		},
		"/plain": func(w http.ResponseWriter, r *http.Request) {
			note(r)
			body(r, w, "no validators, same body")
		},
		"/lm": func(w http.ResponseWriter, r *http.Request) {
			note(r)
			c.mu.Lock()
			c.served[r.URL.Path]++ // ServeContent answers 304 itself: counted below
			c.mu.Unlock()
			if t, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !lm.After(t) {
				c.mu.Lock()
				c.served[r.URL.Path]--
				c.mu.Unlock()
			}
			http.ServeContent(w, r, "", lm, bytes.NewReader([]byte("dated page")))
		},
		"/gone": func(w http.ResponseWriter, r *http.Request) {
			if note(r) > 1 {
				http.NotFound(w, r)
				return
			}
			body(r, w, "here today")
		},
		"/missing": func(w http.ResponseWriter, r *http.Request) {
			note(r)
			http.NotFound(w, r)
		},
		"/new": func(w http.ResponseWriter, r *http.Request) {
			note(r)
			body(r, w, "a new page")
		},
	})
	return c
}

func (c *changingSite) conditional(path string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.headers[path]...)
}

// checkSecondRun checks a run given the first run's results: the mix of
// outcomes, changed flags, the requests' conditional headers, and that no
// body came for a 304.
func checkSecondRun(t *testing.T, c *changingSite, first, second []workflows.Result, out workflows.Output) {
	t.Helper()
	by := map[string]workflows.Result{}
	for _, r := range second {
		by[r.URL[strings.LastIndex(r.URL, "/"):]] = r
	}
	firstBy := map[string]workflows.Result{}
	for _, r := range first {
		firstBy[r.URL[strings.LastIndex(r.URL, "/"):]] = r
	}
	changed := func(r workflows.Result) string {
		if r.Changed == nil {
			return "nil"
		}
		return fmt.Sprint(*r.Changed)
	}
	for path, want := range map[string]string{
		"/keep": "not_modified false", "/lm": "not_modified false", "/change": "ok true",
		"/plain": "ok false", "/new": "ok true",
		// ok then 404 changed; 404 both times did not.
		"/gone": "http_error true", "/missing": "http_error false",
	} {
		r := by[path]
		if got := r.Outcome + " " + changed(r); got != want {
			t.Errorf("%s: %s (%+v), want %s", path, got, r, want)
		}
	}
	for _, path := range []string{"/keep", "/lm"} {
		r, f := by[path], firstBy[path]
		if r.SHA256 != f.SHA256 || r.Size != f.Size || r.Status != 304 || r.ETag != f.ETag || r.BodyKey != f.BodyKey {
			t.Errorf("%s: %+v, want the first run's sha256, size, etag and body_key with status 304 (first: %+v)", path, r, f)
		}
	}
	if out.OK != 5 || out.Failed != 2 || out.NotModified == nil || *out.NotModified != 2 || out.Changed == nil || *out.Changed != 3 {
		t.Errorf("ok %d failed %d not_modified %v changed %v, want 5, 2, 2, 3", out.OK, out.Failed, out.NotModified, out.Changed)
	}
	for path, want := range map[string]string{"/keep": `"k1"|`, "/change": `"c1"|`, "/plain": "|", "/lm": "|" + time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)} {
		if h := c.conditional(path); len(h) != 2 || h[0] != "|" || h[1] != want {
			t.Errorf("%s: conditional headers %q, want none then %q", path, h, want)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.served["/keep"] != 1 || c.served["/lm"] != 1 {
		t.Errorf("bodies sent: /keep %d, /lm %d; want one each (none for a 304)", c.served["/keep"], c.served["/lm"])
	}
}

// TestPreviousMakesRequestsConditional: a batch given an earlier batch's
// results asks for each page only if it changed; a 304 is not_modified
// and carries the earlier body's word; every ok result says whether it
// changed; through the inline path (previous) and the staged one
// (previous_file).
func TestPreviousMakesRequestsConditional(t *testing.T) {
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%v", staged), func(t *testing.T) {
			c := newChangingSite(t)
			var urls []string
			for _, p := range []string{"/keep", "/change", "/plain", "/lm", "/gone", "/missing"} {
				urls = append(urls, c.URL+p)
			}
			out1, err := result(t, start(t, workflows.Input{URLs: urls, KeepBodies: true}))
			if err != nil || out1.OK != 5 {
				t.Fatalf("first run: %v %+v", err, out1)
			}
			if out1.Changed != nil || out1.Results[0].Changed != nil {
				t.Errorf("a batch without previous says what changed: %+v", out1)
			}
			in := workflows.Input{URLs: append(urls, c.URL+"/new"), KeepBodies: true}
			if staged {
				// The earlier results as a file, as a large batch leaves them.
				var b bytes.Buffer
				for _, r := range out1.Results {
					_ = json.NewEncoder(&b).Encode(r)
				}
				key := fmt.Sprintf("inputs/previous-%d.jsonl", time.Now().UnixNano())
				w, _ := env.store.Create(context.Background(), key)
				_, _ = w.Write(b.Bytes())
				_ = w.Commit()
				in.PreviousFile = key
			} else {
				in.Previous = out1.Results
			}
			run := start(t, in)
			out2, err := result(t, run)
			if err != nil {
				t.Fatal(err)
			}
			second := out2.Results
			if staged {
				if out2.ResultsFile == "" {
					t.Fatalf("a batch with previous_file returned %+v", out2)
				}
				second = readResultsFile(t, out2.ResultsFile)
			}
			checkSecondRun(t, c, out1.Results, second, out2)
			assertNoBlobs(t, run)
		})
	}
}

// TestBadPreviousIsInvalidInput: an earlier result that is not one is
// refused, naming it, before anything is fetched.
func TestBadPreviousIsInvalidInput(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{"/p": func(w http.ResponseWriter, r *http.Request) {}})
	for _, tc := range []struct {
		prev []workflows.Result
		want string
	}{
		{[]workflows.Result{{URL: s.URL + "/p"}, {ETag: `"x"`}}, "previous[1]: no url"},
		{[]workflows.Result{{URL: s.URL + "/p", SHA256: "xyz"}}, "previous[0]: sha256 of 3 characters is not 64 lower-case hexadecimal digits"},
		// A "kept body" that is another file: it would name other bytes.
		{[]workflows.Result{{URL: s.URL + "/p"}, {URL: s.URL + "/p", SHA256: hexSum([]byte("x")), BodyKey: "inputs/list.txt"}},
			`previous[1]: body_key "inputs/list.txt" is not where a body of its sha256 is kept (bodies/sha256/` + hexSum([]byte("x")) + ")"},
		{[]workflows.Result{{URL: s.URL + "/p", ContentType: "text/html" + strings.Repeat("<", 100)}}, `previous[0]: content_type "text/html<<<`},
		{[]workflows.Result{{URL: s.URL + "/p", Date: strings.Repeat("x", 65)}}, "previous[0]: date of 65 bytes is longer than a result's (at most 64)"},
	} {
		_, err := result(t, start(t, workflows.Input{URLs: []string{s.URL + "/p"}, Previous: tc.prev}))
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != workflows.InvalidInputType || !strings.Contains(appErr.Message(), tc.want) {
			t.Errorf("got %v, want InvalidInput saying %q", err, tc.want)
		}
	}
	if s.totalHits() != 0 {
		t.Errorf("%d requests for refused batches", s.totalHits())
	}
}

// TestNotModifiedIsTrustedOnlyForItsBody: a 304 that names another ETag
// than the one asked about is not believed (the body is fetched), and a
// batch that keeps bodies asks in full when the earlier body is no longer
// kept.
func TestNotModifiedIsTrustedOnlyForItsBody(t *testing.T) {
	var mu sync.Mutex
	version := 1
	s := newSite(t, map[string]http.HandlerFunc{
		// Says 304 to any conditional request, with the current ETag.
		"/liar": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			v := version
			mu.Unlock()
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, v))
			if r.Header.Get("If-None-Match") != "" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			fmt.Fprintf(w, "version %d", v)
		},
		"/kept": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"same"`)
			if r.Header.Get("If-None-Match") == `"same"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			_, _ = w.Write([]byte("a kept page"))
		},
	})
	urls := []string{s.URL + "/liar", s.URL + "/kept"}
	out1, err := result(t, start(t, workflows.Input{URLs: urls, KeepBodies: true}))
	if err != nil || out1.OK != 2 {
		t.Fatalf("%v %+v", err, out1)
	}
	mu.Lock()
	version = 2
	mu.Unlock()
	// The kept body of /kept expires.
	if err := env.store.DeletePrefix(context.Background(), out1.Results[1].BodyKey); err != nil {
		t.Fatal(err)
	}
	out2, err := result(t, start(t, workflows.Input{URLs: urls, KeepBodies: true, Previous: out1.Results}))
	if err != nil {
		t.Fatal(err)
	}
	liar, kept := out2.Results[0], out2.Results[1]
	if liar.Outcome != workflows.OutcomeOK || liar.SHA256 != hexSum([]byte("version 2")) || liar.Changed == nil || !*liar.Changed {
		t.Errorf("/liar: %+v, want ok with version 2's sha256, changed", liar)
	}
	if kept.Outcome != workflows.OutcomeOK || kept.Changed == nil || *kept.Changed || string(keptBytes(t, kept.BodyKey)) != "a kept page" {
		t.Errorf("/kept: %+v, want ok (fetched whole, its kept body gone), unchanged, kept again", kept)
	}
}

// TestPageRewrittenWithinItsSecondIsFetched: a page rewritten within the
// second of its Last-Modified, served by http.ServeContent (which answers
// 304 to an If-Modified-Since of that second), comes back with its new
// body: an earlier result whose Last-Modified is not a second older than
// its date is asked for in full. One whose Last-Modified is (a strong
// validator) is still asked for conditionally; one from an older results
// file, without a date, in full.
func TestPageRewrittenWithinItsSecondIsFetched(t *testing.T) {
	written := time.Date(2026, 11, 1, 3, 0, 0, 200e6, time.UTC)
	var mu sync.Mutex
	page, modified := []byte("version 1"), written
	ims := map[string][]string{}
	asked := func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		ims[r.URL.Path] = append(ims[r.URL.Path], r.Header.Get("If-Modified-Since"))
	}
	old := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	dated := func(w http.ResponseWriter, r *http.Request) {
		asked(r)
		http.ServeContent(w, r, "", old, strings.NewReader("an old page"))
	}
	s := newSite(t, map[string]http.HandlerFunc{
		"/page": func(w http.ResponseWriter, r *http.Request) {
			asked(r)
			mu.Lock()
			b, m := page, modified
			mu.Unlock()
			// Served in the second it was written.
			w.Header().Set("Date", m.Format(http.TimeFormat))
			http.ServeContent(w, r, "", m, bytes.NewReader(b))
		},
		"/dated":   dated,
		"/undated": dated,
	})
	urls := []string{s.URL + "/page", s.URL + "/dated", s.URL + "/undated"}
	out1, err := result(t, start(t, workflows.Input{URLs: urls}))
	if err != nil || out1.OK != 3 {
		t.Fatalf("first run: %v %+v", err, out1)
	}
	if r := out1.Results[0]; r.LastModified != written.Format(http.TimeFormat) || r.Date != r.LastModified {
		t.Fatalf("first run's /page: %+v, want its Last-Modified and Date kept, the same second", r)
	}
	// Rewritten in the same second: ServeContent's Last-Modified stays.
	mu.Lock()
	page, modified = []byte("version 2"), written.Add(500*time.Millisecond)
	mu.Unlock()
	prev := append([]workflows.Result(nil), out1.Results...)
	prev[2].Date = "" // as an older results file has it
	out2, err := result(t, start(t, workflows.Input{URLs: urls, Previous: prev}))
	if err != nil {
		t.Fatal(err)
	}
	got := func(r workflows.Result) string {
		return fmt.Sprintf("%s changed=%v sha256=%.12s", r.Outcome, r.Changed != nil && *r.Changed, r.SHA256)
	}
	for i, want := range []string{
		got(workflows.Result{Outcome: workflows.OutcomeOK, Changed: ptr(true), SHA256: hexSum([]byte("version 2"))}),
		got(workflows.Result{Outcome: workflows.OutcomeNotModified, Changed: ptr(false), SHA256: hexSum([]byte("an old page"))}),
		got(workflows.Result{Outcome: workflows.OutcomeOK, Changed: ptr(false), SHA256: hexSum([]byte("an old page"))}),
	} {
		if g := got(out2.Results[i]); g != want {
			t.Errorf("%s: %s, want %s", urls[i], g, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for path, want := range map[string]string{"/page": "", "/dated": old.Format(http.TimeFormat), "/undated": ""} {
		if h := ims[path]; len(h) != 2 || h[1] != want {
			t.Errorf("%s: If-Modified-Since %q, want none then %q", path, h, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestUnreadableIncrementalResultsAreFetchedInFull: a chain whose last
// results file cannot be read (a torn last line, the zeros a crash
// leaves, a bad line) still runs: every URL is fetched in full, the
// output says why, and the run's own results mend the chain, so the next
// run is conditional again. The same file given as previous_file is the
// user's own input: InvalidInput naming the line.
func TestUnreadableIncrementalResultsAreFetchedInFull(t *testing.T) {
	for name, tail := range map[string]string{
		"torn last line": `{"url":"%s/plain","outcome":"ok","sha2`,
		"zeros":          strings.Repeat("\x00", 4096),
	} {
		t.Run(name, func(t *testing.T) {
			c := newChangingSite(t)
			urls := []string{c.URL + "/keep", c.URL + "/plain"}
			good, _ := json.Marshal(workflows.Result{URL: urls[0], Outcome: workflows.OutcomeOK, Status: 200,
				SHA256: hexSum([]byte("the same page")), Size: 13, ETag: `"k1"`})
			if strings.Contains(tail, "%s") {
				tail = fmt.Sprintf(tail, c.URL)
			}
			chain := fmt.Sprintf("chain-%d", time.Now().UnixNano())
			w, _ := env.store.Create(context.Background(), workflows.IncrementalKey(chain))
			_, _ = w.Write(append(append(good, '\n'), tail...))
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}

			out, err := result(t, start(t, workflows.Input{URLs: urls, Incremental: chain}))
			if err != nil {
				t.Fatalf("the run failed: %v", err)
			}
			if !strings.Contains(out.PreviousError, fmt.Sprintf("%q cannot be read (previous_file line 2: not a result", workflows.IncrementalKey(chain))) ||
				!strings.Contains(out.PreviousError, "every URL fetched in full") {
				t.Errorf("previous_error %q, want why no earlier results were used", out.PreviousError)
			}
			if out.OK != 2 || out.NotModified == nil || *out.NotModified != 0 || out.Changed == nil || *out.Changed != 2 {
				t.Errorf("ok %d, not_modified %v, changed %v: want 2 fetched in full, both changed", out.OK, out.NotModified, out.Changed)
			}
			for _, path := range []string{"/keep", "/plain"} {
				if h := c.conditional(path); len(h) != 1 || h[0] != "|" {
					t.Errorf("%s: conditional headers %q, want one request asking in full", path, h)
				}
			}

			// The chain is mended: the next run compares with this one.
			out2, err := result(t, start(t, workflows.Input{URLs: urls, Incremental: chain}))
			if err != nil || out2.PreviousError != "" || out2.NotModified == nil || *out2.NotModified != 1 {
				t.Errorf("the next run: %v %+v, want /keep not_modified and no previous_error", err, out2)
			}
			if h := c.conditional("/keep"); len(h) != 2 || h[1] != `"k1"|` {
				t.Errorf("/keep: conditional headers %q, want none then its ETag", h)
			}

			// Given by the user, the same bytes are refused.
			key := fmt.Sprintf("inputs/torn-%d.jsonl", time.Now().UnixNano())
			w, _ = env.store.Create(context.Background(), key)
			_, _ = w.Write(append(append(good, '\n'), tail...))
			_ = w.Commit()
			_, err = result(t, start(t, workflows.Input{URLs: urls, PreviousFile: key}))
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != workflows.InvalidInputType || !strings.Contains(appErr.Message(), "previous_file line 2: not a result") {
				t.Errorf("as previous_file: %v, want InvalidInput naming line 2", err)
			}
		})
	}
}
