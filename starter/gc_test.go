package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/workflows"
)

// unchangingSite serves one page that never changes, with an ETag, and
// answers 304 to a request that names it; full counts the 200s.
func unchangingSite(t *testing.T) (url string, full *atomic.Int64) {
	t.Helper()
	full = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		fmt.Fprint(w, "a page that never changes")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/stable", full
}

// fetchOne runs a batch of url with args and returns its one result and its
// workflow ID.
func fetchOne(t *testing.T, url string, args ...string) (workflows.Result, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "results.jsonl")
	r := starter(t, "", nil, append(append([]string{"--blob-dir", workersBlobDir, "--quiet", "--out", out}, args...), url)...)
	if r.code != 0 {
		t.Fatalf("starter %q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("--out: %q: %v", b, err)
	}
	id := regexp.MustCompile(`workflow_id=(\S+)`).FindStringSubmatch(r.stderr)
	if id == nil {
		t.Fatalf("no workflow ID in %q", r.stderr)
	}
	return res, id[1]
}

// age makes the file of a kept body last used 40 days ago.
func age(t *testing.T, key string) {
	t.Helper()
	past := time.Now().Add(-40 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(workersBlobDir, filepath.FromSlash(key)), past, past); err != nil {
		t.Fatal(err)
	}
}

// gcRun runs `starter gc --older-than 720h` and returns what it said.
func gcRun(t *testing.T) string {
	t.Helper()
	r := starter(t, "", nil, "gc", "--older-than", "720h", "--blob-dir", workersBlobDir)
	if r.code != 0 {
		t.Fatalf("gc: exit %d\nstderr: %s", r.code, r.stderr)
	}
	return r.stderr
}

// TestGCKeepsABodyCarriedForwardBy304s: in a keep_bodies chain whose page
// answers 304 every run, the first run's kept body is the one every later
// result names. Each 304 counts as a use of it, so `gc --older-than 720h`
// 40 days after it was written (and 40 days after each use but the last)
// leaves it, and `bodies --save` of the last run has it. Once no run uses
// it, gc removes it, and no later result names a body that is not there:
// a keep_bodies run asks for it whole and keeps it again; a run without
// keep_bodies gets its 304 and names no body.
func TestGCKeepsABodyCarriedForwardBy304s(t *testing.T) {
	url, full := unchangingSite(t)
	chain := []string{"--keep-bodies", "--incremental", fmt.Sprintf("gc-chain-%d", time.Now().UnixNano())}
	first, _ := fetchOne(t, url, chain...)
	if first.Outcome != workflows.OutcomeOK || first.BodyKey == "" {
		t.Fatalf("first run: %+v, want ok with a body_key", first)
	}
	key := first.BodyKey
	for night := 2; night <= 3; night++ {
		age(t, key)
		r, id := fetchOne(t, url, chain...)
		if r.Outcome != workflows.OutcomeNotModified || r.BodyKey != key {
			t.Fatalf("run %d: %+v, want not_modified naming %s", night, r, key)
		}
		gcRun(t)
		if _, err := os.Stat(filepath.Join(workersBlobDir, filepath.FromSlash(key))); err != nil {
			t.Fatalf("after run %d (a 304) gc removed the body its result names: %v", night, err)
		}
		saved := filepath.Join(t.TempDir(), "saved")
		if r := starter(t, "", nil, "bodies", "--save", saved, "--blob-dir", workersBlobDir, id); r.code != 0 {
			t.Fatalf("bodies --save of run %d: exit %d\nstderr: %s", night, r.code, r.stderr)
		}
		if b, err := os.ReadFile(filepath.Join(saved, "0000001")); err != nil || string(b) != "a page that never changes" {
			t.Errorf("saved body of run %d: %q, %v", night, b, err)
		}
	}
	if n := full.Load(); n != 1 {
		t.Errorf("the page was sent %d times, want once (then 304s)", n)
	}

	// Unused for 40 days: gone.
	age(t, key)
	if said := gcRun(t); !strings.Contains(said, "removed ") {
		t.Errorf("gc: %s", said)
	}
	if _, err := os.Stat(filepath.Join(workersBlobDir, filepath.FromSlash(key))); err == nil {
		t.Fatal("gc left a body unused for 40 days")
	}
	last := filepath.Join(t.TempDir(), "last.jsonl")
	if err := os.WriteFile(last, []byte(fmt.Sprintf(`{"url":%q,"outcome":"ok","status":200,"sha256":%q,"size":%d,"etag":"\"v1\"","body_key":%q}`+"\n", url, first.SHA256, first.Size, key)), 0o644); err != nil {
		t.Fatal(err)
	}
	plain, _ := fetchOne(t, url, "--previous", last)
	if plain.Outcome != workflows.OutcomeNotModified || plain.BodyKey != "" {
		t.Errorf("without keep_bodies, after gc: %+v, want not_modified naming no body", plain)
	}
	again, _ := fetchOne(t, url, chain...)
	if again.Outcome != workflows.OutcomeOK || again.Status != http.StatusOK || again.BodyKey != key || again.SHA256 != first.SHA256 {
		t.Errorf("with keep_bodies, after gc: %+v, want ok (asked whole) naming %s", again, key)
	}
	if b, err := os.ReadFile(filepath.Join(workersBlobDir, filepath.FromSlash(key))); err != nil || string(b) != "a page that never changes" {
		t.Errorf("the body kept again: %q, %v", b, err)
	}
}
