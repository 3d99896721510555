package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSaveBodiesAndGC: --save writes each kept body to a directory, named
// by its URL's position, with index.jsonl; `bodies` does it again for the
// finished batch; `gc` removes a kept body written long ago, and `bodies`
// then says it has expired.
func TestSaveBodiesAndGC(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pages")
	urls := []string{site.URL + "/a", site.URL + "/saved-b", site.URL + "/missing", site.URL + "/a"}
	r := starter(t, "", nil, append([]string{"--save", dir, "--blob-dir", workersBlobDir, "--quiet"}, urls...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "saved 3 kept bodies") {
		t.Fatalf("exit %d, want 1 (a 404)\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	check := func(dir string) []savedBody {
		t.Helper()
		for file, want := range map[string]string{"0000001": "page /a", "0000002": "page /saved-b", "0000004": "page /a"} {
			if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || string(b) != want {
				t.Errorf("%s: %q, %v; want %q", file, b, err, want)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "0000003")); !os.IsNotExist(err) {
			t.Errorf("a file for the 404: %v", err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "index.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var index []savedBody
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var s savedBody
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatalf("index.jsonl: %q: %v", line, err)
			}
			index = append(index, s)
		}
		if len(index) != 3 || index[1].URL != urls[1] || index[1].File != "0000002" || index[1].SHA256 != sum("page /saved-b") || index[0].BodyKey != index[2].BodyKey {
			t.Errorf("index.jsonl: %+v", index)
		}
		return index
	}
	index := check(dir)
	id := regexp.MustCompile(`workflow_id=(\S+)`).FindStringSubmatch(r.stderr)
	if id == nil {
		t.Fatalf("no workflow ID in %q", r.stderr)
	}
	again := filepath.Join(t.TempDir(), "again")
	if r := starter(t, "", nil, "bodies", "--save", again, "--blob-dir", workersBlobDir, id[1]); r.code != 0 || !strings.Contains(r.stdout, "saved 3 kept bodies") {
		t.Fatalf("bodies: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	check(again)

	// gc: the body of /saved-b was written 40 days ago; /a's just now.
	old := filepath.Join(workersBlobDir, filepath.FromSlash(index[1].BodyKey))
	past := time.Now().Add(-40 * 24 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if r := starter(t, "", nil, "gc", "--older-than", "720h", "--blob-dir", workersBlobDir); r.code != 0 || !strings.Contains(r.stderr, "removed 1 kept bodies") {
		t.Fatalf("gc: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("gc left %s: %v", old, err)
	}
	if _, err := os.Stat(filepath.Join(workersBlobDir, filepath.FromSlash(index[0].BodyKey))); err != nil {
		t.Errorf("gc removed a recent body: %v", err)
	}
	r = starter(t, "", nil, "bodies", "--save", filepath.Join(t.TempDir(), "third"), "--blob-dir", workersBlobDir, id[1])
	if r.code == 0 || !strings.Contains(r.stderr, "is no longer in the blob store") {
		t.Errorf("bodies after gc: exit %d\nstderr: %s", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "gc", "--blob-dir", workersBlobDir); r.code != 2 || !strings.Contains(r.stderr, "--older-than") {
		t.Errorf("gc without --older-than: exit %d, %s", r.code, r.stderr)
	}
}

// TestJSONAndOutTogether: --json with --out writes the results file too,
// for a batch whose results come back inline.
func TestJSONAndOutTogether(t *testing.T) {
	out := filepath.Join(t.TempDir(), "r.jsonl")
	r := starter(t, "", nil, "--json", "--out", out, "--quiet", site.URL+"/j1", site.URL+"/j2")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil || strings.Count(string(b), "\n") != 2 || !strings.Contains(string(b), site.URL+"/j2") {
		t.Errorf("--out holds %q (%v), want the two results", b, err)
	}
}
