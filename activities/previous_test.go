package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"
)

// A real result, as a batch writes it: every field checked.
func realResult() Result {
	sha := strings.Repeat("ab", 32)
	return Result{URL: "http://a.example/p", Outcome: OutcomeOK, Status: 200, SHA256: sha, Size: 12,
		ContentType: `text/html; charset="utf-8"`, ETag: `W/"v1"`, LastModified: "Sun, 01 Nov 2026 03:00:00 GMT",
		Date: "Sun, 01 Nov 2026 03:00:00 GMT", BodyKey: KeptBodyKey(sha)}
}

// An earlier result is taken only as what a result holds: its body_key is
// where a body of its sha256 is kept, and its carried headers pass the
// filter a live response's do.
func TestCheckPreviousTakesOnlyWhatAResultHolds(t *testing.T) {
	if err := CheckPrevious(realResult()); err != nil {
		t.Fatalf("a real result is refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Result)
		want string
	}{
		{"another file as body", func(r *Result) { r.BodyKey = "inputs/list.txt" }, `body_key "inputs/list.txt" is not where a body of its sha256 is kept (bodies/sha256/abab`},
		{"another body's key", func(r *Result) { r.BodyKey = KeptBodyKey(strings.Repeat("cd", 32)) }, "is not where a body of its sha256 is kept"},
		{"body without sha256", func(r *Result) { r.SHA256 = "" }, "without a sha256"},
		{"long body_key", func(r *Result) { r.BodyKey = strings.Repeat("<", 300) }, `body_key "<<<`},
		{"content type with <", func(r *Result) { r.ContentType = "text/<html>" }, "content_type \"text/<html>\" has bytes a result's does not"},
		{"long content type", func(r *Result) { r.ContentType = strings.Repeat("a", 129) }, "content_type of 129 bytes is longer than a result's (at most 128)"},
		{"etag with &", func(r *Result) { r.ETag = `"a&b"` }, "etag"},
		{"etag with a control byte", func(r *Result) { r.ETag = "\"a\x01\"" }, "etag"},
		{"last_modified with DEL", func(r *Result) { r.LastModified = "Sun\x7f" }, "last_modified"},
		{"long date", func(r *Result) { r.Date = strings.Repeat("a", 65) }, "date of 65 bytes"},
		{"date with a newline", func(r *Result) { r.Date = "Sun,\n01 Nov" }, "date"},
	} {
		r := realResult()
		tc.edit(&r)
		if err := CheckPrevious(r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// stagePrevious stages two URLs with an earlier results file holding
// lines.
func (e *fetchEnv) stagePrevious(t *testing.T, lines string, optional bool) (*StageResult, error) {
	t.Helper()
	w, _ := e.store.Create(context.Background(), "incremental/chain.jsonl")
	fmt.Fprint(w, lines)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	v, err := e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/r", URLs: []string{"http://a.example/p", "http://a.example/q"},
		ChunkSize: 1, PreviousFile: "incremental/chain.jsonl", PreviousOptional: optional})
	if err != nil {
		return nil, err
	}
	var st StageResult
	return &st, v.Get(&st)
}

func jsonLine(r Result) (string, error) {
	b, err := json.Marshal(r)
	return string(b) + "\n", err
}

// goodLine is an earlier result of http://a.example/p as a results file
// holds it.
func goodLine(t *testing.T) string {
	b, err := jsonLine(realResult())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A previous_file line whose body_key is not its sha256's is InvalidInput
// naming the line, and staging leaves nothing behind.
func TestPreviousFileNamesABadBodyKey(t *testing.T) {
	e := newFetchEnv(t, 0)
	bad := realResult()
	bad.URL, bad.BodyKey = "http://a.example/q", "inputs/list.txt"
	line, _ := jsonLine(bad)
	_, err := e.stagePrevious(t, goodLine(t)+line, false)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != InvalidInputType || !strings.Contains(appErr.Message(), `previous_file line 2: body_key "inputs/list.txt" is not where`) {
		t.Fatalf("got %v, want InvalidInput naming line 2's body_key", err)
	}
	for _, f := range e.files(t) {
		if strings.Contains(f, "batches") {
			t.Errorf("left behind: %s", f)
		}
	}
}

// Optional earlier results (a chain's) that cannot be read, a torn last
// line or any bad line, are no earlier results: staging succeeds with no
// parts and says why; given as previous_file, the same file is
// InvalidInput naming the line.
func TestUnreadableOptionalPreviousIsNone(t *testing.T) {
	for name, tail := range map[string]string{
		"torn last line": `{"url":"http://a.example/q","outcome":"ok","sha2`,
		"zeros":          strings.Repeat("\x00", 4096),
		"bad body_key":   strings.Replace(goodLine(t), "bodies/sha256/", "inputs/", 1),
	} {
		t.Run(name, func(t *testing.T) {
			e := newFetchEnv(t, 0)
			st, err := e.stagePrevious(t, goodLine(t)+tail, true)
			if err != nil {
				t.Fatalf("staging failed: %v", err)
			}
			if st.Count != 2 || st.PrevParts != 0 || !strings.Contains(st.PreviousError, `"incremental/chain.jsonl" cannot be read (previous_file line 2: `) ||
				!strings.Contains(st.PreviousError, "every URL fetched in full") {
				t.Errorf("staged %+v, want 2 URLs, no earlier results, and why", st)
			}
			for _, f := range e.files(t) {
				if strings.Contains(f, "/prev/") {
					t.Errorf("earlier results left joined: %s", f)
				}
			}
			_, err = e.stagePrevious(t, goodLine(t)+tail, false)
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != InvalidInputType || !strings.Contains(appErr.Message(), "previous_file line 2: ") {
				t.Errorf("as previous_file: %v, want InvalidInput naming line 2", err)
			}
		})
	}
	// A readable file is used.
	e := newFetchEnv(t, 0)
	st, err := e.stagePrevious(t, goodLine(t), true)
	if err != nil || st.PrevParts != 1 || st.PreviousError != "" {
		t.Errorf("a good file: %+v, %v; want one part", st, err)
	}
}

// A conditional request goes out only on a validator that can stand for
// the earlier body: an ETag, or a Last-Modified a second or more older
// than the Date of its response.
func TestAskIfChangedNeedsAStrongValidator(t *testing.T) {
	const lm = "Sun, 01 Nov 2026 03:00:00 GMT"
	sha := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name     string
		prev     *Prev
		inm, ims string
	}{
		{"etag", &Prev{SHA256: sha, ETag: `"e"`, LastModified: lm}, `"e"`, ""},
		{"weak etag", &Prev{SHA256: sha, ETag: `W/"e"`}, `W/"e"`, ""},
		{"strong date", &Prev{SHA256: sha, LastModified: lm, Date: "Sun, 01 Nov 2026 03:00:01 GMT"}, "", lm},
		{"same second", &Prev{SHA256: sha, LastModified: lm, Date: lm}, "", ""},
		{"modified after its date", &Prev{SHA256: sha, LastModified: lm, Date: "Sun, 01 Nov 2026 02:59:00 GMT"}, "", ""},
		{"no date (an older results file)", &Prev{SHA256: sha, LastModified: lm}, "", ""},
		{"no sha256", &Prev{ETag: `"e"`}, "", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://a.example/", nil)
		got := askIfChanged(req, tc.prev)
		if inm, ims := req.Header.Get("If-None-Match"), req.Header.Get("If-Modified-Since"); inm != tc.inm || ims != tc.ims || got != (tc.inm != "" || tc.ims != "") {
			t.Errorf("%s: conditional %v, If-None-Match %q, If-Modified-Since %q; want %q, %q", tc.name, got, inm, ims, tc.inm, tc.ims)
		}
	}
}
