package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/workflows"
)

// badLines is a URL list with every kind of entry the workflow refuses,
// between good ones (lines 1, 4 and 9).
func badLines(t *testing.T) (path, content string) {
	t.Helper()
	content = strings.Join([]string{
		site.URL + "/good/1",
		"ftp://127.0.0.1/file",            // 2: scheme
		"http://user:hunter2@127.0.0.1/x", // 3: credentials
		site.URL + "/good/2   # a comment",
		site.URL + "/a page",                         // 5: a space
		"not-a-url",                                  // 6: not absolute
		`{"url": 17}`,                                // 7: a JSON line that cannot be read
		`{"url": "` + site.URL + `/m", "body": "x"}`, // 8: a body with GET
		site.URL + "/good/3",
		"http://[::1/x", // 10: does not parse
	}, "\n") + "\n"
	path = filepath.Join(t.TempDir(), "urls.txt")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, content
}

// TestSkipInvalid: --skip-invalid fetches the valid lines of a list and
// says which it left out and why; without it, the batch is refused at
// the first bad line, as before; with nothing valid, it is refused.
func TestSkipInvalid(t *testing.T) {
	file, content := badLines(t)
	r := starter(t, "", nil, "--skip-invalid", "--file", file, "--json", "--quiet")
	if r.code != 0 {
		t.Fatalf("--skip-invalid: exit %d\n%s", r.code, r.stderr)
	}
	var out workflows.Output
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stdout is not the output JSON: %v\n%s", err, r.stdout)
	}
	var got []string
	for _, res := range out.Results {
		got = append(got, strings.TrimPrefix(res.URL, site.URL)+" "+res.Outcome)
	}
	if want := "/good/1 ok,/good/2 ok,/good/3 ok"; strings.Join(got, ",") != want {
		t.Errorf("fetched %v, want %s", got, want)
	}
	report := "skipped 7 invalid lines of " + file + ":\n" +
		`  line 2: "ftp://127.0.0.1/file": scheme "ftp" is not supported (want http or https)` + "\n" +
		`  line 3: "http://user:xxxxx@127.0.0.1/x": credentials in URLs are not accepted (they would be stored in workflow history)` + "\n" +
		fmt.Sprintf(`  line 5: "%s/a page" has a space or a tab at byte %d: encode it (%%20 for a space)`, site.URL, len(site.URL)+2) + "\n"
	if !strings.Contains(r.stderr, report) || !strings.Contains(r.stderr, "  line 6: \"not-a-url\" is not an absolute URL") ||
		!strings.Contains(r.stderr, "  line 7: ") || strings.Contains(r.stderr, "line 8") || !strings.Contains(r.stderr, "  and 2 more\n") {
		t.Errorf("the report of the skipped lines:\n%s\nwant it to begin\n%s", r.stderr, report)
	}
	if strings.Contains(r.stderr, "hunter2") {
		t.Errorf("the report shows a URL's password:\n%s", r.stderr)
	}

	// Without the flag: refused, naming a bad line (a JSON line that
	// cannot be read is refused as the file is read, first).
	r = starter(t, "", nil, "--file", file, "--quiet")
	if r.code != exitUsage || !strings.Contains(r.stderr, "invalid input: "+file+` line 7: want a URL or an object`) {
		t.Errorf("without --skip-invalid: exit %d, want %d naming line 7\n%s", r.code, exitUsage, r.stderr)
	}
	r = starter(t, strings.Replace(content, `{"url": 17}`, "", 1), nil, "--file", "-", "--quiet")
	if r.code != exitUsage || !strings.Contains(r.stderr, `invalid input: stdin line 2: "ftp://127.0.0.1/file": scheme "ftp"`) {
		t.Errorf("without --skip-invalid: exit %d, want %d naming line 2\n%s", r.code, exitUsage, r.stderr)
	}
	r = starter(t, "", nil, "--file", filepath.Join(t.TempDir(), "none.txt"), "--quiet")
	if r.code != exitUsage {
		t.Errorf("a missing file: exit %d", r.code)
	}

	// Arguments, and arguments with a file.
	r = starter(t, "", nil, "--skip-invalid", "--quiet", site.URL+"/arg/1", "ftp://127.0.0.1/y")
	if r.code != 0 || !strings.Contains(r.stderr, "skipped 1 invalid argument:\n  argument 2: \"ftp://127.0.0.1/y\": scheme") {
		t.Errorf("--skip-invalid with arguments: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "1 ok, 0 failed") {
		t.Errorf("--skip-invalid with arguments:\n%s", r.stdout)
	}
	r = starter(t, "", nil, "--skip-invalid", "--quiet", "--file", file, "ftp://127.0.0.1/y")
	if r.code != 0 || !strings.Contains(r.stderr, "skipped 8 invalid entries (1 argument, 7 lines of "+file+"):\n  argument 1: ") || !strings.Contains(r.stderr, "  "+file+" line 2: ") {
		t.Errorf("--skip-invalid with an argument and a file: exit %d\n%s", r.code, r.stderr)
	}

	// Nothing valid left.
	before := hits.Load()
	r = starter(t, "ftp://127.0.0.1/a\nnot a url\n", nil, "--skip-invalid", "--quiet")
	if r.code != exitUsage || !strings.Contains(r.stderr, "skipped 2 invalid lines of stdin:") || !strings.Contains(r.stderr, "no valid URLs left") {
		t.Errorf("nothing valid: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	if hits.Load() != before {
		t.Error("a list with nothing valid reached the site")
	}
}

func TestSkippedReport(t *testing.T) {
	l := givenURLs{source: "urls.txt"}
	for i := 9; i >= 1; i-- {
		l.skipped = append(l.skipped, invalidEntry{place{line: i * 2}, fmt.Errorf("bad %d", i*2)})
	}
	want := "skipped 9 invalid lines of urls.txt:\n  line 2: bad 2\n  line 4: bad 4\n  line 6: bad 6\n  line 8: bad 8\n  line 10: bad 10\n  and 4 more\n"
	if got := l.skippedReport(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	l = givenURLs{skipped: []invalidEntry{{place{arg: 3}, fmt.Errorf("x")}}}
	if got := l.skippedReport(); got != "skipped 1 invalid argument:\n  argument 3: x\n" {
		t.Errorf("got %q", got)
	}
}
