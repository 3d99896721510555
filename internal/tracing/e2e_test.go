package tracing_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/batchfetch/batchfetch/internal/freeport"
)

// The header secret and the query values of the URLs: never in a span.
const (
	headerSecret = "Bearer tok-4f1d9a-never-in-a-span"
	querySecret  = "QSECRET"
)

var (
	buildOnce sync.Once
	binDir    string // the commands, built once for the tests that run them
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// commands builds the worker, the dev server and the starter (once) and
// returns their directory.
func commands(t *testing.T) string {
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "tracing-bin-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir, "../../worker", "../../cmd/devserver", "../../starter")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("building the commands: %v", buildErr)
	}
	return binDir
}

// otelEnv exports to rcv.
func otelEnv(rcv *receiver) []string {
	return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL}
}

// environ is the test's environment without its OTEL_* variables (the
// processes export as env says, only), and env.
func environ(env []string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// proc is one of the test's processes.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// start runs exe with args and env added to the test's; ready, when
// set, is closed once a line of its output contains readyLine.
func start(t *testing.T, exe string, env []string, readyLine string, ready chan struct{}, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(exe, args...), done: make(chan struct{})}
	p.cmd.Env = environ(env)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if ready != nil && strings.Contains(sc.Text(), readyLine) {
				close(ready)
				ready = nil
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s %s:\n%s", filepath.Base(exe), strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop ends the process with SIGTERM (a worker then flushes its spans)
// and waits for it.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
}

// flakySite serves /page/N (an HTML page of N KiB) and /flaky/N (a 503
// the first time, then the page), each only with the header secret.
type flakySite struct {
	mu     sync.Mutex
	seen   map[string]int
	traced int // requests that came with a trace header
}

func (s *flakySite) page(n int) []byte {
	return []byte(fmt.Sprintf("<html><head><title>page %d</title></head><body>%s</body></html>", n, strings.Repeat("x", n<<10)))
}

func (s *flakySite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n int
	_, errPage := fmt.Sscanf(r.URL.Path, "/page/%d", &n)
	_, errFlaky := fmt.Sscanf(r.URL.Path, "/flaky/%d", &n)
	if errPage != nil && errFlaky != nil {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.seen[r.URL.Path]++
	first := s.seen[r.URL.Path] == 1
	if r.Header.Get("Traceparent") != "" || r.Header.Get("Baggage") != "" {
		s.traced++
	}
	s.mu.Unlock()
	switch {
	case r.Header.Get("Authorization") != headerSecret:
		http.Error(w, "no credentials", http.StatusUnauthorized)
	case errFlaky == nil && first:
		http.Error(w, "try again", http.StatusServiceUnavailable)
	default:
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(s.page(n))
	}
}

// stack is the dev server, a fetch worker and a CPU worker, each a
// process of its own, exporting their spans to rcv.
type stack struct {
	t          *testing.T
	bin, blobs string
	env        []string
	fetch, cpu *proc
	server     *proc
}

func newStack(t *testing.T, rcv *receiver) *stack {
	dir := t.TempDir()
	s := &stack{t: t, bin: commands(t), blobs: filepath.Join(dir, "blobs")}
	port := freeport.Run(t, 8)
	ready := make(chan struct{})
	s.server = start(t, filepath.Join(s.bin, "devserver"), nil, "temporal server at", ready,
		"--db", filepath.Join(dir, "server.sqlite"), "--port", fmt.Sprint(port), "--ui-port", "0")
	select {
	case <-ready:
	case <-s.server.done:
		t.Fatalf("the dev server did not start:\n%s", s.server.output())
	}
	s.env = append([]string{fmt.Sprintf("TEMPORAL_ADDRESS=127.0.0.1:%d", port), "TEMPORAL_NAMESPACE=default", "BATCHFETCH_BUILD_ID=tracetest"}, otelEnv(rcv)...)
	worker := filepath.Join(s.bin, "worker")
	s.fetch = start(t, worker, append(s.env, "BATCHFETCH_SECRET_PARTNER_TOKEN="+headerSecret), "", nil,
		"--role", "fetch", "--allow", "127.0.0.1", "--blob-dir", s.blobs, "--log-level", "warn")
	s.cpu = start(t, worker, s.env, "", nil, "--role", "cpu", "--blob-dir", s.blobs, "--cpu-slots", "1", "--log-level", "warn")
	return s
}

// run runs the starter on urls as batch id, waiting for it; it must
// exit with status want (0: every URL ok).
func (s *stack) run(id string, want int, urls []string, args ...string) {
	s.t.Helper()
	runStarter(s.t, s.bin, s.env, id, want, urls, append([]string{"--blob-dir", s.blobs}, args...)...)
}

// runStarter runs the starter in bin on urls as batch id, with the
// header secret, and waits for it to exit with status want.
func runStarter(t *testing.T, bin string, env []string, id string, want int, urls []string, args ...string) {
	t.Helper()
	argv := append([]string{"--id", id, "--json", "--quiet", "--header-secret", "Authorization=PARTNER_TOKEN", "--initial-backoff", "100ms"}, args...)
	cmd := exec.Command(filepath.Join(bin, "starter"), append(argv, urls...)...)
	cmd.Env = environ(env)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	_ = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != want {
		t.Fatalf("starter %s: exit status %d, want %d\n%s", id, code, want, out.String())
	}
}

// stopWorkers stops the workers: their last spans go out before they exit.
func (s *stack) stopWorkers() {
	s.fetch.stop()
	s.cpu.stop()
}

func TestOneTraceFromTheStarterToEachRequestAndHash(t *testing.T) {
	rcv := newReceiver(t)
	site := &flakySite{seen: map[string]int{}}
	srv := httptest.NewServer(site)
	defer srv.Close()
	s := newStack(t, rcv)

	// A small batch: one activity per URL (Temporal's retries), with the
	// html step. One URL answers 503 first.
	small := []string{srv.URL + "/page/3?sig=" + querySecret + "-a", srv.URL + "/flaky/5?sig=" + querySecret + "-b", srv.URL + "/page/1"}
	smallSizes := []int{len(site.page(3)), len(site.page(5)), len(site.page(1))}
	s.run("trace-small", 0, small, "--process", "html")
	// A larger one: URLs fetched inside chunk activities.
	var large []string
	var largeSizes []int
	for i := range 150 {
		large = append(large, fmt.Sprintf("%s/page/%d?sig=%s-%d", srv.URL, 10+i%4, querySecret, i))
		largeSizes = append(largeSizes, len(site.page(10+i%4)))
	}
	s.run("trace-large", 0, large)
	// A fail_fast batch that fails: its message names the URL, which the
	// workflow's span records without its path and query.
	s.run("trace-failed", 1, []string{srv.URL + "/gone/1?sig=" + querySecret + "-c"}, "--mode", "fail_fast")
	s.stopWorkers()

	spans := rcv.all()
	tr := newTraces(spans)
	tr.summary(t)
	httpSmall := tr.check(t, "trace-small", smallSizes, map[int]bool{1: true}, "html", workerRoles)
	httpLarge := tr.check(t, "trace-large", largeSizes, nil, "sha256", workerRoles)
	httpFailed := tr.count(t, tr.root(t, "trace-failed"), "HTTP GET")
	if httpFailed != 1 {
		t.Errorf("the failed batch's trace has %d HTTP spans, want 1", httpFailed)
	}
	if all := tr.named("HTTP GET"); len(all) != httpSmall+httpLarge+httpFailed {
		t.Errorf("%d HTTP spans exported, %d in the batches' traces: some request is outside its batch's trace", len(all), httpSmall+httpLarge+httpFailed)
	}
	// Nor is any URL's path: a span names the host only.
	for _, secret := range []string{headerSecret, querySecret, "/page/", "/flaky/", "/gone/"} {
		if rcv.sent([]byte(secret)) {
			t.Errorf("%q went out in a span", secret)
		}
	}
	site.mu.Lock()
	defer site.mu.Unlock()
	if site.traced > 0 {
		t.Errorf("%d requests to the fetched site carried trace headers", site.traced)
	}
}

// With --dev, the starter runs the server and both workers itself: the
// batch is one trace all the same, from the one process.
func TestDevStarterIsOneTrace(t *testing.T) {
	rcv := newReceiver(t)
	site := &flakySite{seen: map[string]int{}}
	srv := httptest.NewServer(site)
	defer srv.Close()
	bin := commands(t)
	dir := t.TempDir()
	port := freeport.Run(t, 8)
	env := append(otelEnv(rcv), "BATCHFETCH_SECRET_PARTNER_TOKEN="+headerSecret)
	urls := []string{srv.URL + "/page/2?sig=" + querySecret, srv.URL + "/flaky/4"}
	runStarter(t, bin, env, "trace-dev", 0, urls, "--dev", "--dev-db", filepath.Join(dir, "dev.sqlite"), "--dev-port", fmt.Sprint(port), "--dev-ui-port", "0",
		"--process", "html")
	tr := newTraces(rcv.all())
	tr.check(t, "trace-dev", []int{len(site.page(2)), len(site.page(4))}, map[int]bool{1: true}, "html", devRoles)
	for _, secret := range []string{headerSecret, querySecret} {
		if rcv.sent([]byte(secret)) {
			t.Errorf("%q went out in a span", secret)
		}
	}
}
