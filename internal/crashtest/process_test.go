package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/process"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestCustomProcessorExample runs examples/customprocessor, a CPU worker
// binary with a step of its own ("wordcount"), in place of the worker's
// CPU role, and a batch through it: each result carries the step's
// output, and the built-in html step still works on the same worker.
func TestCustomProcessorExample(t *testing.T) {
	c := newCluster(t)
	c.cpu.stop()
	custom := &proc{t: t, name: "customprocessor", env: c.cpu.env, args: []string{"--blob-dir", c.blobDir}}
	custom.start()
	defer custom.stop()
	pages := map[string]string{
		"/poem": "one two  three\nfour\tfive\n\nsix",
		"/page": "<title>A page</title><p>hello <a href=\"/poem\">poem</a></p>\n",
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, pages[r.URL.Path])
	}))
	defer site.Close()
	run := func(proc string) workflows.Output {
		t.Helper()
		r, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
			workflows.Input{URLs: []string{site.URL + "/poem", site.URL + "/page"}, Process: proc})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var out workflows.Output
		if err := r.Get(ctx, &out); err != nil || out.OK != 2 {
			t.Fatalf("process %s: %v, %+v\n%s", proc, err, out, custom.out)
		}
		return out
	}
	out := run("wordcount")
	for i, want := range []string{`{"lines":3,"words":6}`, `{"lines":1,"words":4}`} {
		if got := string(out.Results[i].Processed); got != want {
			t.Errorf("wordcount of %s: %s, want %s", out.Results[i].URL, got, want)
		}
	}
	out = run("html")
	var page process.HTMLResult
	if err := json.Unmarshal(out.Results[1].Processed, &page); err != nil || page.Title != "A page" || len(page.Links) != 1 || page.Links[0] != site.URL+"/poem" {
		t.Errorf("html on the custom worker: %s", out.Results[1].Processed)
	}
}

// htmlStream is an HTML page of n bytes, a title then paragraphs with
// links, generated as it is read (the same bytes whatever the reads).
type htmlStream struct {
	n, off  int64
	para    int
	pending []byte
}

func (h *htmlStream) Read(p []byte) (int, error) {
	if h.off >= h.n {
		return 0, io.EOF
	}
	if h.off == 0 && h.para == 0 && len(h.pending) == 0 {
		h.pending = []byte("<!doctype html><title>A gigabyte</title>\n")
	}
	for len(h.pending) < len(p) {
		h.pending = fmt.Appendf(h.pending, "<p>paragraph %d with <a href=\"/l/%d\">a link</a> and some words to read</p>\n", h.para, h.para%5000)
		h.para++
	}
	n := copy(p, h.pending)
	if rest := h.n - h.off; int64(n) > rest {
		n = int(rest)
	}
	h.pending = h.pending[:copy(h.pending, h.pending[n:])]
	h.off += int64(n)
	return n, nil
}

// TestHTMLStepOnAGigabyteStaysSmall: the html step on a 1 GiB page, run by
// the worker binary's CPU role, keeps the worker's resident memory small:
// the page streams through the hash and the parser, one buffer at a
// time, and the link list is capped.
func TestHTMLStepOnAGigabyteStaysSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("a 1 GiB body")
	}
	c := newCluster(t)
	const size = 1 << 30
	h := sha256.New()
	if _, err := io.Copy(h, &htmlStream{n: size}); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.Copy(w, &htmlStream{n: size})
	}))
	defer site.Close()
	r, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/big"}, Process: "html", AttemptTimeout: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := r.Get(ctx, &out); err != nil || out.OK != 1 {
		t.Fatalf("%v, %+v", err, out)
	}
	res := out.Results[0]
	var page process.HTMLResult
	if err := json.Unmarshal(res.Processed, &page); err != nil || page.Title != "A gigabyte" || len(page.Links) != process.MaxLinks || !page.Truncated {
		t.Errorf("processed: %.300s", res.Processed)
	}
	if res.SHA256 != want || res.Size != size {
		t.Errorf("sha256 %s size %d, want %s and %d", res.SHA256, res.Size, want, size)
	}
	hwm := vmHWM(t, c.cpu.cmd.Process.Pid)
	t.Logf("CPU worker peak resident memory %d MiB", hwm>>20)
	if hwm > 96<<20 {
		t.Errorf("the CPU worker's peak resident memory reached %d MiB hashing and parsing a 1 GiB page", hwm>>20)
	}
}

func vmHWM(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}
