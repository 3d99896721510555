package main

// These tests build the real starter binary and run it against the
// embedded Temporal server, with workers in the test process and a web
// server on 127.0.0.1.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/workflows"
)

var (
	binary   string
	hostPort string
	hits     atomic.Int64
	site     *httptest.Server
)

// workersBlobDir is the test workers' blob store; testStack is the
// embedded server they run on.
var (
	workersBlobDir string
	testStack      *devstack.Stack
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "starter-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "starter")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the starter: %v\n%s", err, out)
		return 1
	}
	// The default blob directory is under the user's cache directory:
	// this one, not the user's own (the go command's build cache stays
	// where it is).
	if gocache, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
		os.Setenv("GOCACHE", strings.TrimSpace(string(gocache)))
	}
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	workersBlobDir = filepath.Join(dir, "blobs")
	stack, err := devstack.Start(context.Background(), devstack.Config{BlobDir: workersBlobDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stack.Stop()
	testStack = stack
	hostPort = stack.FrontendAddress()
	site = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		_, _ = io.WriteString(w, "page "+r.URL.Path)
	}))
	defer site.Close()
	return m.Run()
}

type result struct {
	stdout, stderr string
	code           int
}

func starter(t *testing.T, stdin string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+hostPort, "TEMPORAL_NAMESPACE=default")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestURLsFromFileAsTable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "urls.txt")
	content := "# pages\n" + site.URL + "/a\n\n   " + site.URL + "/b   # the second\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := starter(t, "", nil, "--file", file, "--quiet")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{site.URL + "/a", site.URL + "/b", sum("page /a")[:16], "2 ok, 0 failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestJSONFromStdinAndFailureExitStatus(t *testing.T) {
	r := starter(t, site.URL+"/c\n"+site.URL+"/missing\n", nil, "--json")
	if r.code != exitFailed {
		t.Fatalf("exit %d, want %d (a URL failed)\nstderr: %s", r.code, exitFailed, r.stderr)
	}
	var out workflows.Output
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("stdout is not the output JSON: %v\n%s", err, r.stdout)
	}
	if len(out.Results) != 2 || out.Results[0].SHA256 != sum("page /c") || out.Results[1].Outcome != "http_error" || out.Results[1].Status != 404 {
		t.Errorf("got %+v", out)
	}
	if !strings.Contains(r.stderr, "1 of 2 URLs failed") {
		t.Errorf("stderr does not say what failed: %s", r.stderr)
	}
}

func TestBadInputExitsTwoAndStartsNothing(t *testing.T) {
	before := hits.Load()
	for _, args := range [][]string{
		{"ftp://127.0.0.1/x"},
		{"--mode", "sometimes", site.URL + "/a"},
		{"--attempt-timeout", "forever", site.URL + "/a"},
		{"--max-in-flight", "0", site.URL + "/a"},
		{"--no-such-flag"},
	} {
		r := starter(t, "", nil, args...)
		if r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d\nstderr: %s", args, r.code, exitUsage, r.stderr)
		}
	}
	r := starter(t, "", nil, "--mode", "sometimes", site.URL+"/a")
	if !strings.Contains(r.stderr, `mode: "sometimes" is not one of`) {
		t.Errorf("stderr does not explain: %s", r.stderr)
	}
	if hits.Load() != before {
		t.Errorf("bad input reached the web server")
	}
}

func TestSameIDAttachesInsteadOfFetchingTwice(t *testing.T) {
	id := "starter-test-idempotent"
	first := starter(t, "", nil, "--id", id, "--json", "--quiet", site.URL+"/once")
	if first.code != 0 {
		t.Fatalf("first run: exit %d: %s", first.code, first.stderr)
	}
	before := hits.Load()
	second := starter(t, "", nil, "--id", id, "--json", "--quiet", site.URL+"/once")
	if second.code != 0 {
		t.Fatalf("second run: exit %d: %s", second.code, second.stderr)
	}
	if hits.Load() != before {
		t.Errorf("the second start fetched again")
	}
	if first.stdout != second.stdout {
		t.Errorf("the second start printed a different result:\n%s\nvs\n%s", first.stdout, second.stdout)
	}
	if !strings.Contains(second.stderr, "attached to the existing batch workflow_id="+id) || strings.Contains(second.stderr, "are not these") {
		t.Errorf("the second start does not say it attached: %q", second.stderr)
	}
	third := starter(t, "", nil, "--id", id, "--json", "--quiet", site.URL+"/other")
	if hits.Load() != before || !strings.Contains(third.stderr, "its URLs are not these (1 URLs there, 1 here)") {
		t.Errorf("other URLs under the same ID: %d requests, stderr %q", hits.Load()-before, third.stderr)
	}
	if strings.Contains(second.stderr, "other settings") {
		t.Errorf("the same settings are said to differ: %q", second.stderr)
	}
	fourth := starter(t, "", nil, "--id", id, "--json", "--quiet", "--mode", "fail_fast", "--max-in-flight", "3", site.URL+"/once")
	if !strings.Contains(fourth.stderr, "it runs with other settings (mode collect there, fail_fast here, max_in_flight 100 there, 3 here)") {
		t.Errorf("other settings under the same ID: stderr %q", fourth.stderr)
	}
	if r := starter(t, "", nil, "--serve", site.URL+"/a"); r.code != exitUsage || !strings.Contains(r.stderr, "--serve, --demo and --demo-urls go with --dev") {
		t.Errorf("--serve without --dev: exit %d, %q", r.code, r.stderr)
	}
}

func TestNoWaitPrintsIDs(t *testing.T) {
	r := starter(t, "", nil, "--no-wait", "--id", "starter-test-nowait", site.URL+"/d")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "workflow_id=starter-test-nowait run_id=") {
		t.Errorf("exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestUnreachableServer(t *testing.T) {
	r := starter(t, "", []string{"TEMPORAL_ADDRESS=127.0.0.1:1"}, site.URL+"/a")
	if r.code != exitInternal || !strings.Contains(r.stderr, "cannot reach Temporal at 127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestStatusResultsAndCancel(t *testing.T) {
	id := "starter-test-subcommands"
	first := starter(t, "", nil, "start", "--id", id, "--json", "--quiet", site.URL+"/s1", site.URL+"/s2")
	if first.code != 0 {
		t.Fatalf("start: exit %d: %s", first.code, first.stderr)
	}
	st := starter(t, "", nil, "status", id)
	if st.code != 0 || !strings.Contains(st.stdout, "status=Completed") {
		t.Errorf("status: exit %d, %q", st.code, st.stdout)
	}
	res := starter(t, "", nil, "results", "--json", id)
	if res.code != 0 || res.stdout != first.stdout {
		t.Errorf("results: exit %d, output differs from the start's:\n%s\nvs\n%s", res.code, res.stdout, first.stdout)
	}

	slow := "starter-test-cancel"
	if r := starter(t, "", nil, "--no-wait", "--id", slow, "--attempt-timeout", "5m", site.URL+"/slow"); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "results", slow); r.code != exitState || !strings.Contains(r.stderr, "still running") {
		t.Errorf("results of a running batch: exit %d, %q", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "status", slow); r.code != 0 || !strings.Contains(r.stdout, "status=Running") || !strings.Contains(r.stdout, "in flight 1") {
		t.Errorf("status of a running batch: exit %d, %q", r.code, r.stdout)
	}
	if r := starter(t, "", nil, "cancel", "--wait", slow); r.code != 0 || !strings.Contains(r.stdout, "stopped") {
		t.Errorf("cancel: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if r := starter(t, "", nil, "status", slow); !strings.Contains(r.stdout, "status=Canceled") {
		t.Errorf("status after cancel: %q", r.stdout)
	}
	if r := starter(t, "", nil, "cancel", slow); r.code != exitState || !strings.Contains(r.stderr, "is not running (Canceled)") {
		t.Errorf("cancel of a finished batch: exit %d, %q", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "results", "no-such-batch"); r.code != exitNotFound || !strings.Contains(r.stderr, `no batch with workflow ID "no-such-batch"`) {
		t.Errorf("results of an unknown batch: exit %d, %q", r.code, r.stderr)
	}
}

func TestWarnsWhenNoWorkerPolls(t *testing.T) {
	cmd := exec.Command(binary, "--task-queue", "nobody-polls-this", site.URL+"/a")
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+hostPort)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "unreachable") {
				t.Errorf("a query no worker answers is taken for a server that does not: %q", sc.Text())
			}
			if strings.Contains(sc.Text(), `no worker is polling task queue "nobody-polls-this"`) &&
				strings.Contains(sc.Text(), "go run ./worker --role fetch --task-queue nobody-polls-this --blob-dir ") {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Error("the starter ended without the warning")
		}
	case <-time.After(time.Minute):
		t.Error("no warning within a minute")
	}
	_ = cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
		t.Errorf("after Ctrl-C: %v, want exit %d", err, exitInterrupted)
	}
}

// Flags may follow arguments; every error says what is wrong, first, and
// names the one flag at fault.
func TestFlagsAnywhereAndErrorsThatSayWhat(t *testing.T) {
	r := starter(t, "", nil, site.URL+"/a", "--json", "--quiet")
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": 1`) {
		t.Errorf("a flag after the URL: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "starter: flag provided but not defined: -bogus"},
		{[]string{"status"}, "starter: status takes one WORKFLOW_ID, got 0 arguments"},
		{[]string{"results", "a", "b"}, "starter: results takes one WORKFLOW_ID, got 2 arguments"},
		{[]string{site.URL + "/a", "--max-in-flight", "0"}, "starter: --max-in-flight must be at least 1"},
		{[]string{site.URL + "/a", "--max-attempts", "-1"}, "starter: --max-attempts must be at least 1"},
	} {
		r := starter(t, "", nil, tc.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q first", tc.args, r.code, r.stderr, exitUsage, tc.want)
		}
	}
	// A bad URL is named where it was written.
	list := filepath.Join(t.TempDir(), "urls.txt")
	if err := os.WriteFile(list, []byte("# header\n\n"+site.URL+"/a\nnot-a-url\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--file", list}, exitUsage, "starter: invalid input: " + list + " line 4: "},
		{[]string{site.URL + "/a", "bad"}, exitUsage, "starter: invalid input: argument 2: "},
		{[]string{"stauts", "x"}, exitUsage, "not a URL; commands are start, status, cancel, results, bodies, gc and schedule"},
		{[]string{"status", ""}, exitUsage, "starter: status: the WORKFLOW_ID is empty"},
		{[]string{"status", "no-such-batch", "--run-id", "01a22143-0c85-725e-88fa-218f77219cdb"}, exitNotFound, `starter: no run "01a22143-0c85-725e-88fa-218f77219cdb" of a batch with workflow ID "no-such-batch"`},
		{[]string{"status", "some-batch", "--run-id", "bogus"}, exitUsage, `starter: --run-id "bogus": `},
	} {
		r := starter(t, "", nil, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := starter(t, "", nil, "--help"); r.code != 0 || !strings.Contains(r.stderr, "usage: starter") {
		t.Errorf("--help: exit %d, stderr %q", r.code, r.stderr)
	}
}

// --out is checked before a batch starts; a finished batch's status shows
// its counts.
func TestOutCheckedFirstAndStatusCounts(t *testing.T) {
	before := hits.Load()
	r := starter(t, "", nil, "--out", filepath.Join(t.TempDir(), "no", "such", "dir", "r.jsonl"), site.URL+"/a")
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "starter: --out ") || hits.Load() != before {
		t.Errorf("--out in a missing directory: exit %d, stderr %q, %d requests made", r.code, r.stderr, hits.Load()-before)
	}
	id := fmt.Sprint("counts-", time.Now().UnixNano())
	if r := starter(t, "", nil, "--id", id, "--quiet", site.URL+"/a", site.URL+"/missing"); r.code != exitFailed {
		t.Fatalf("batch: exit %d, stderr %s", r.code, r.stderr)
	}
	r = starter(t, "", nil, "status", id)
	if r.code != 0 || !strings.Contains(r.stdout, "status=Completed") || !strings.Contains(r.stdout, "1 ok, 1 failed of 2") {
		t.Errorf("status of a finished batch: exit %d, stdout %q", r.code, r.stdout)
	}
}
