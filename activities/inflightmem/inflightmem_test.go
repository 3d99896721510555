// Package inflightmem measures what a fetch worker's requests in flight
// cost in memory: the worker binary as a process of its own, with its
// default flags, holds 5,000 requests open at once on a loopback site,
// and its resident memory is read then and before (the batch is then
// canceled):
//
//	go test -run XXX -bench InFlightMemory -benchtime 1x ./activities/inflightmem
//
// (BENCH_DIR=/dev/shm puts the blobs on tmpfs.)
//
// Each case has a worker of its own. "headers" requests wait for their
// response headers; "large-bodies" have been sent the first 256 KiB of a
// 1 MiB body (a blob of its own on disk: reads fill the copy buffer) and
// wait for the rest; "small-bodies" have read 32 KiB of a
// 60 KiB body (held in memory for the chunk's pack).
package inflightmem

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/promtext"
	"github.com/batchfetch/batchfetch/workflows"
)

const inFlight = workflows.MaxInFlightLimit

func BenchmarkInFlightMemory(b *testing.B) {
	dir, err := os.MkdirTemp(os.Getenv("BENCH_DIR"), "inflightmem-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := devstack.Start(context.Background(), devstack.Config{BlobDir: filepath.Join(dir, "blobs"), NoWorkers: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Stop()
	bin := filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/batchfetch/batchfetch/worker").CombinedOutput(); err != nil {
		b.Fatalf("building the worker: %v\n%s", err, out)
	}
	s := newSite(b)
	for _, tc := range []struct {
		name       string
		length     int // of the body (0: no body before the release)
		sent       int // bytes sent before waiting
		headerWait bool
	}{
		{"headers", 1024, 0, true},
		{"large-bodies", 1 << 20, 256 << 10, false},
		{"small-bodies", 60 << 10, 32 << 10, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				metrics := fmt.Sprintf("127.0.0.1:%d", freeport.Run(b, 1))
				w := startWorker(b, st, bin, filepath.Join(dir, "blobs"), metrics)
				// Warm: the worker has run a batch before it is measured.
				run(b, st, s.urls("quick", 200, 0, 0), 200)
				idle := rss(b, w.Process.Pid, "VmRSS")
				idleGo := promtext.Scrape(b, "http://"+metrics+"/metrics")
				full := s.hold(inFlight)
				r, err := start(st, s.urls(tc.name, inFlight, tc.length, tc.sent), inFlight)
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- r.Get(context.Background(), nil) }()
				select {
				case <-full:
				case err := <-done:
					b.Fatalf("the batch ended before %d requests were open: %v", inFlight, err)
				case <-time.After(2 * time.Minute):
					b.Fatalf("only %d of %d requests open after 2 minutes", s.open.Load(), inFlight)
				}
				// Every request is open; the worker may still be reading
				// what the site sent before it waits: the highest of a
				// few seconds' samples.
				var held int64
				for range 15 {
					held = max(held, rss(b, w.Process.Pid, "VmRSS"))
					time.Sleep(200 * time.Millisecond)
				}
				peak := rss(b, w.Process.Pid, "VmHWM")
				heldGo := promtext.Scrape(b, "http://"+metrics+"/metrics")
				// What the rest of the bodies would cost is not measured
				// here: the batch is canceled, and its requests end.
				if err := st.Client.CancelWorkflow(context.Background(), r.GetID(), r.GetRunID()); err != nil {
					b.Fatal(err)
				}
				<-done
				s.release()
				stopWorker(w)
				per := float64(held-idle) / inFlight / 1024
				b.ReportMetric(per, "KiB/request")
				b.ReportMetric(float64(idle)/(1<<20), "MiB-idle")
				b.ReportMetric(float64(held)/(1<<20), "MiB-at-5000")
				b.ReportMetric(float64(peak)/(1<<20), "MiB-peak")
				// The Go runtime's own account: heap spans in use (live
				// and not yet collected) and goroutine stacks.
				for _, m := range []struct{ name, unit string }{
					{"go_memstats_heap_inuse_bytes", "heap-KiB/request"}, {"go_memstats_stack_inuse_bytes", "stack-KiB/request"},
				} {
					b.ReportMetric((heldGo[m.name]-idleGo[m.name])/inFlight/1024, m.unit)
				}
				b.ReportMetric((heldGo["go_goroutines"]-idleGo["go_goroutines"])/inFlight, "goroutines/request")
			}
		})
	}
}

// site answers /quick/ at once; other paths send their headers (and, with
// length and sent in the query, part of the body), count themselves open,
// and wait for release before sending the rest.
type site struct {
	base string
	open atomic.Int64

	mu      sync.Mutex
	want    int64
	full    chan struct{}
	waiting chan struct{}
}

func newSite(b *testing.B) *site {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &site{base: "http://" + ln.Addr().String()}
	srv := &http.Server{Handler: s}
	go srv.Serve(ln) //nolint:errcheck
	b.Cleanup(func() { _ = srv.Close() })
	return s
}

func (s *site) urls(kind string, n, length, sent int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s/%s/%d-%d?length=%d&sent=%d", s.base, kind, time.Now().UnixNano(), i, length, sent)
	}
	return out
}

// hold makes the next n requests wait; full closes once they are all open.
func (s *site) hold(n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open.Store(0)
	s.want, s.full, s.waiting = int64(n), make(chan struct{}), make(chan struct{})
	return s.full
}

func (s *site) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.waiting)
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/quick/") {
		_, _ = w.Write([]byte("ok"))
		return
	}
	length, _ := strconv.Atoi(r.URL.Query().Get("length"))
	sent, _ := strconv.Atoi(r.URL.Query().Get("sent"))
	s.mu.Lock()
	waiting, full, want := s.waiting, s.full, s.want
	s.mu.Unlock()
	body := make([]byte, length)
	if sent > 0 {
		w.Header().Set("Content-Length", strconv.Itoa(length))
		_, _ = w.Write(body[:sent])
		w.(http.Flusher).Flush()
	}
	if s.open.Add(1) == want {
		close(full)
	}
	select {
	case <-waiting:
	case <-r.Context().Done():
		return
	}
	_, _ = w.Write(body[sent:])
}

func startWorker(b *testing.B, st *devstack.Stack, bin, blobDir, metrics string) *exec.Cmd {
	cmd := exec.Command(bin, "--allow", "127.0.0.1", "--blob-dir", blobDir, "--log-level", "warn", "--metrics-listen", metrics)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+st.FrontendAddress(), "TEMPORAL_NAMESPACE=default")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopWorker(cmd) })
	return cmd
}

func stopWorker(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

func run(b *testing.B, st *devstack.Stack, urls []string, maxInFlight int) {
	if err := runErr(st, urls, maxInFlight); err != nil {
		b.Fatal(err)
	}
}

func start(st *devstack.Stack, urls []string, maxInFlight int) (client.WorkflowRun, error) {
	return st.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, MaxInFlight: maxInFlight, AttemptTimeout: "5m"})
}

func runErr(st *devstack.Stack, urls []string, maxInFlight int) error {
	r, err := start(st, urls, maxInFlight)
	if err != nil {
		return err
	}
	var out workflows.Output
	if err := r.Get(context.Background(), &out); err != nil {
		return err
	}
	if out.OK != len(urls) {
		return fmt.Errorf("%d of %d URLs ok: %s", out.OK, len(urls), failures(st, out))
	}
	return nil
}

// failures tells the errors of a batch's failed URLs, and how many had each.
func failures(st *devstack.Stack, out workflows.Output) string {
	results := out.Results
	if out.ResultsFile != "" {
		r, err := st.Store.Open(context.Background(), out.ResultsFile)
		if err != nil {
			return err.Error()
		}
		defer r.Close()
		dec := json.NewDecoder(r)
		for {
			var res workflows.Result
			if dec.Decode(&res) != nil {
				break
			}
			results = append(results, res)
		}
	}
	count := map[string]int{}
	for _, r := range results {
		if r.Outcome != workflows.OutcomeOK {
			count[fmt.Sprintf("%s after %d attempts: %s", r.Outcome, r.Attempts, r.Error)]++
		}
	}
	var lines []string
	for msg, n := range count {
		lines = append(lines, fmt.Sprintf("%d x %s", n, msg))
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

// rss reads a line of /proc/pid/status in bytes.
func rss(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
