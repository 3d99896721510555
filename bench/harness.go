package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/demosite"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// stack is the dev stack the scenarios share (server, client, blob store,
// workers), in a directory of its own that stop removes.
type stack struct {
	*devstack.Stack
	client client.Client
	store  blobstore.Store
	dir    string
	cfg    workers.Config
	// worker is the worker process (with --worker-process) and
	// workerArgs its flags.
	worker     *exec.Cmd
	workerArgs []string
}

func startStack(c *config) (*stack, error) {
	dir, err := os.MkdirTemp(c.dir, ".bench-")
	if err != nil {
		return nil, err
	}
	dbFile := filepath.Join(dir, "bench.sqlite")
	if c.memoryDB {
		dbFile = ""
	}
	cfg := workers.Config{CPUSlots: c.cpuSlots, FetchSlots: c.fetchSlots, HTTP: loopback(c.perHost)}
	blobDir := filepath.Join(dir, "blobs")
	ds, err := devstack.Start(context.Background(), devstack.Config{DBFile: dbFile, BlobDir: blobDir, Workers: cfg, NoWorkers: c.workerProc})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	st := &stack{Stack: ds, client: ds.Client, store: ds.Store, dir: dir, cfg: cfg}
	if c.workerProc {
		// The worker as users run it: its own process, its default flags
		// but the ones that point it at this stack (and the sizes asked
		// for on the bench's command line).
		st.workerArgs = []string{"--allow", "127.0.0.1", "--blob-dir", blobDir, "--log-level", "warn"}
		if c.fetchSlots > 0 {
			st.workerArgs = append(st.workerArgs, "--fetch-slots", strconv.Itoa(c.fetchSlots))
		}
		if c.cpuSlots > 0 {
			st.workerArgs = append(st.workerArgs, "--cpu-slots", strconv.Itoa(c.cpuSlots))
		}
		if c.perHost > 0 {
			st.workerArgs = append(st.workerArgs, "--max-conns-per-host", strconv.Itoa(c.perHost))
		}
		bin, err := buildWorker(dir)
		if err == nil {
			st.worker = exec.Command(bin, st.workerArgs...)
			st.worker.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+ds.FrontendAddress(), "TEMPORAL_NAMESPACE=default")
			st.worker.Stderr = os.Stderr
			err = st.worker.Start()
		}
		if err != nil {
			st.stop()
			return nil, fmt.Errorf("starting the worker process: %w", err)
		}
	}
	return st, nil
}

// buildWorker builds the worker binary into dir.
func buildWorker(dir string) (string, error) {
	bin := filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-o", bin, "./worker")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the worker: %w", err)
	}
	return bin, nil
}

func (s *stack) stop() {
	if s.worker != nil && s.worker.Process != nil {
		_ = s.worker.Process.Signal(syscall.SIGTERM)
		_ = s.worker.Wait()
	}
	s.Stop()
	_ = os.RemoveAll(s.dir)
}

// site serves small pages with a fixed latency and large pattern bodies.
type site struct {
	base string
	srv  *http.Server
	c    *config

	mu    sync.Mutex
	asked map[string][]time.Time // /flaky/ paths: when each was requested
}

func startSite(c *config) (*site, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	small := make([]byte, c.bodyBytes)
	for i := range small {
		small[i] = byte('a' + i%26)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/small/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(c.latency)
		w.Header().Set("Content-Length", strconv.Itoa(len(small)))
		_, _ = w.Write(small)
	})
	mux.HandleFunc("/large/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, io.LimitReader(demosite.Pattern{}, n))
	})
	s := &site{base: "http://" + l.Addr().String(), srv: &http.Server{Handler: mux}, c: c, asked: map[string][]time.Time{}}
	// /flaky/...?fail=N answers 503 N times, then 200; it notes when it
	// was asked.
	mux.HandleFunc("/flaky/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked[r.URL.Path] = append(s.asked[r.URL.Path], time.Now())
		n := len(s.asked[r.URL.Path])
		s.mu.Unlock()
		if fail, _ := strconv.Atoi(r.URL.Query().Get("fail")); n <= fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(small)
	})
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *site) close() { _ = s.srv.Close() }

func (s *site) smallURLs(n int, tag string) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/small/%s/%d", s.base, tag, i)
	}
	return urls
}

func (s *site) largeURLs(n int, size int64, tag string) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/large/%s/%d?size=%d", s.base, tag, i, size)
	}
	return urls
}

// baseline fetches and hashes urls with plain Go: a goroutine per URL, a
// semaphore of inFlight, the same pooled client, sha256 streamed.
func baseline(urls []string, inFlight, perHost int) (time.Duration, error) {
	if perHost <= 0 {
		perHost = inFlight
	}
	hc, err := activities.NewHTTPClient(loopback(perHost))
	if err != nil {
		return 0, err
	}
	defer hc.CloseIdleConnections()
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for _, u := range urls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := hc.Get(u)
			if err == nil {
				h := sha256.New()
				_, err = io.Copy(h, resp.Body)
				resp.Body.Close()
				_ = h.Sum(nil)
			}
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// durable runs one batch on the stack and returns its results.
func durable(st *stack, urls []string, inFlight int) ([]workflows.Result, time.Duration, error) {
	results, _, d, err := durableRun(st, urls, inFlight)
	return results, d, err
}

func durableRun(st *stack, urls []string, inFlight int) ([]workflows.Result, client.WorkflowRun, time.Duration, error) {
	ctx := context.Background()
	in := workflows.Input{MaxInFlight: inFlight}
	if len(urls) > workflows.InlineLimit {
		key := fmt.Sprintf("inputs/bench-%d.txt", time.Now().UnixNano())
		w, err := st.store.Create(ctx, key)
		if err != nil {
			return nil, nil, 0, err
		}
		for _, u := range urls {
			fmt.Fprintln(w, u)
		}
		if err := w.Commit(); err != nil {
			return nil, nil, 0, err
		}
		defer st.store.DeletePrefix(ctx, key) //nolint:errcheck
		in.URLsFile = key
	} else {
		in.URLs = urls
	}
	start := time.Now()
	run, err := st.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName, in)
	if err != nil {
		return nil, nil, 0, err
	}
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		return nil, nil, 0, err
	}
	d := time.Since(start)
	if out.Failed > 0 {
		return nil, nil, 0, fmt.Errorf("%d URLs failed", out.Failed)
	}
	results := out.Results
	if out.ResultsFile != "" {
		r, err := st.store.Open(ctx, out.ResultsFile)
		if err != nil {
			return nil, nil, 0, err
		}
		dec := json.NewDecoder(r)
		for {
			var res workflows.Result
			if err := dec.Decode(&res); err != nil {
				break
			}
			results = append(results, res)
		}
		r.Close()
		_ = st.store.DeletePrefix(ctx, out.ResultsFile)
	}
	return results, run, d, nil
}

func percentile(ms []int64, p float64) int64 {
	if len(ms) == 0 {
		return 0
	}
	slices.Sort(ms)
	return ms[min(len(ms)-1, int(float64(len(ms))*p))]
}

func fetchLatencies(results []workflows.Result) []int64 {
	var ms []int64
	for _, r := range results {
		ms = append(ms, r.ElapsedMS)
	}
	return ms
}

// prefetched starts a batch of large bodies whose CPU queue has no worker,
// waits until every body is fetched and waiting to be hashed, then starts
// a CPU pool (of the stack's size) on that queue: what follows is hashing
// alone, not hashing beside downloads.
func prefetched(st *stack, urls []string, queue string) (client.WorkflowRun, func(), error) {
	run, err := st.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, AttemptTimeout: "10m", CPUTaskQueue: queue, MaxInFlight: len(urls)})
	if err != nil {
		return nil, nil, err
	}
	if err := waitPending(st, run, "HashChunk", len(urls)); err != nil {
		return nil, nil, err
	}
	if st.worker != nil {
		// A CPU worker as users run one: the worker binary, --role cpu,
		// its default flags.
		args := append([]string{"--role", "cpu", "--cpu-task-queue", queue}, st.workerArgs...)
		cmd := exec.Command(st.worker.Path, args...)
		cmd.Env = st.worker.Env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		return run, func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }, nil
	}
	cfg := st.cfg
	cfg.Role, cfg.CPUTaskQueue = workers.RoleCPU, queue
	pool, err := st.StartWorkers(cfg)
	if err != nil {
		return nil, nil, err
	}
	return run, pool.Stop, nil
}

// waitPending waits until run has n pending activities of type name.
func waitPending(st *stack, run client.WorkflowRun, name string, n int) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		d, err := st.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			return err
		}
		waiting := 0
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityType().GetName() == name {
				waiting++
			}
		}
		if waiting == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d %s activities pending after 10 minutes", waiting, n, name)
		}
		time.Sleep(20 * time.Millisecond) // polling the server's view
	}
}

func slotsOf(cfg workers.Config) int {
	if cfg.CPUSlots > 0 {
		return cfg.CPUSlots
	}
	return workers.DefaultCPUSlots()
}

// hashing says whether a hash activity of run is running.
func hashing(st *stack, run client.WorkflowRun) bool {
	d, err := st.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	if err != nil {
		return false
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() == "HashChunk" && pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return true
		}
	}
	return false
}

// loopback is the client configuration of both sides: the local site only.
func loopback(perHost int) activities.ClientConfig {
	return activities.ClientConfig{MaxConnsPerHost: perHost, Guard: activities.Guard{Allow: []string{"127.0.0.1"}}}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}
