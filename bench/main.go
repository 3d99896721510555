// Command bench measures batchfetch against a plain-Go baseline, in one
// process and one run, on a local web server:
//
//	go run ./bench                          # quick: every scenario, small sizes
//	go run ./bench --urls 10000 --scenarios throughput
//
// Scenarios:
//
//	throughput  URLs/s of the durable pipeline and of a plain-Go errgroup
//	            (same HTTP client, same sha256, no Temporal), and their ratio
//	isolation   fetch latency p50/p99 of small pages, alone and while the
//	            CPU worker is saturated hashing large bodies
//	hash        hash MB/s of the pipeline against raw crypto/sha256 x slots
//	rss         peak resident memory (VmHWM) of a worker process that
//	            fetches and hashes one large body
//
// It also prints the history length of the largest run it started.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/devserver"
	"github.com/batchfetch/batchfetch/internal/demosite"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

type config struct {
	scenarios   string
	urls        int
	latency     time.Duration
	inFlight    int
	bodyBytes   int
	loadBodies  int
	loadSize    int64
	rssSize     int64
	memoryDB    bool
	cpuSlots    int
	fetchSlots  int
	perHost     int
	cpuProfile  string
	dir         string
	historyRuns []client.WorkflowRun
}

func main() {
	var c config
	flag.StringVar(&c.scenarios, "scenarios", "throughput,isolation,hash,rss", "comma-separated scenarios to run")
	flag.IntVar(&c.urls, "urls", 10000, "small URLs in the throughput scenario")
	flag.DurationVar(&c.latency, "latency", 20*time.Millisecond, "server latency of a small page")
	flag.IntVar(&c.inFlight, "in-flight", 100, "fetches at once (max_in_flight, and the baseline's limit)")
	flag.IntVar(&c.bodyBytes, "body", 1024, "bytes of a small page")
	flag.IntVar(&c.loadBodies, "load-bodies", 8, "large bodies hashed as CPU load (isolation) and for hash MB/s")
	flag.Int64Var(&c.loadSize, "load-size", 256<<20, "bytes of each large body")
	flag.Int64Var(&c.rssSize, "rss-size", 1<<30, "bytes of the body in the rss scenario")
	flag.IntVar(&c.perHost, "max-conns-per-host", 100, "HTTP connections per host, for both the baseline and the workers (all URLs share one host here)")
	flag.StringVar(&c.dir, "dir", defaultDir(), "where the server's database and the blobs go while the bench runs (removed at the end); default /dev/shm (tmpfs) when there is one")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the durable throughput run to this file")
	flag.BoolVar(&c.memoryDB, "memory-db", false, "keep the server's database in memory instead of a SQLite file")
	flag.IntVar(&c.cpuSlots, "cpu-slots", 0, "CPU worker slots (0: the worker's default)")
	flag.IntVar(&c.fetchSlots, "fetch-slots", 0, "fetch worker slots (0: the worker's default)")
	flag.Parse()
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// stack is a dev server, its client, workers and a blob store.
type stack struct {
	srv    *devserver.Server
	client client.Client
	store  *blobstore.Dir
	dir    string
	pools  *workers.Pools
	cfg    workers.Config
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
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	srv, err := devserver.Start(devserver.Config{DBFile: dbFile, Port: port})
	if err != nil {
		return nil, err
	}
	cl, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		return nil, err
	}
	store, err := blobstore.NewDir(filepath.Join(dir, "blobs"))
	if err != nil {
		return nil, err
	}
	cfg := workers.Config{Store: store, CPUSlots: c.cpuSlots, FetchSlots: c.fetchSlots, HTTP: loopback(c.perHost)}
	pools, err := workers.Start(cl, cfg)
	if err != nil {
		return nil, err
	}
	return &stack{srv: srv, client: cl, store: store, dir: dir, pools: pools, cfg: cfg}, nil
}

func (s *stack) stop() {
	s.pools.Stop()
	s.client.Close()
	_ = s.srv.Stop()
	_ = os.RemoveAll(s.dir)
}

func run(c *config) error {
	site, err := startSite(c)
	if err != nil {
		return err
	}
	defer site.close()
	st, err := startStack(c)
	if err != nil {
		return err
	}
	defer st.stop()
	fmt.Printf("machine: %s/%s, %d CPUs, %s; server: in-process dev server (%s); blobs and database in %s; fetch slots %d, CPU slots %d\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), map[bool]string{true: "SQLite in memory", false: "SQLite file"}[c.memoryDB], st.dir, max(c.fetchSlots, 100), slotsOf(st.cfg))
	// Warm up connections, caches and task queues.
	if _, _, err := durable(st, site.smallURLs(200, "warm"), c.inFlight); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	for _, sc := range strings.Split(c.scenarios, ",") {
		var err error
		switch strings.TrimSpace(sc) {
		case "throughput":
			err = throughput(c, st, site)
		case "isolation":
			err = isolation(c, st, site)
		case "hash":
			err = hashRate(c, st, site)
		case "rss":
			err = rss(c, st, site)
		case "":
		default:
			err = fmt.Errorf("unknown scenario %q", sc)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
	}
	return historyReport(c, st)
}

// site serves small pages with a fixed latency and large pattern bodies.
type site struct {
	base string
	srv  *http.Server
	c    *config
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
	s := &site{base: "http://" + l.Addr().String(), srv: &http.Server{Handler: mux}, c: c}
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

func throughput(c *config, st *stack, s *site) error {
	urls := s.smallURLs(c.urls, "tp")
	bd, err := baseline(urls, c.inFlight, c.perHost)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	_, run, dd, err := durableRun(st, s.smallURLs(c.urls, "tp2"), c.inFlight)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	c.historyRuns = append(c.historyRuns, run)
	b, d := float64(c.urls)/bd.Seconds(), float64(c.urls)/dd.Seconds()
	fmt.Printf("\n== throughput: %d URLs, %v server latency, %d in flight, %d-byte pages\n", c.urls, c.latency, c.inFlight, c.bodyBytes)
	fmt.Printf("baseline (plain Go)    %8.0f URLs/s  (%v)\n", b, bd.Round(time.Millisecond))
	fmt.Printf("batchfetch (durable)   %8.0f URLs/s  (%v)\n", d, dd.Round(time.Millisecond))
	fmt.Printf("ratio durable/baseline %8.2f\n", d/b)
	phases, err := phaseTimes(st, run.GetID(), run.GetRunID())
	if err != nil {
		return err
	}
	fmt.Printf("where the durable time went: %s\n", phases)
	return nil
}

// phaseTimes sums, per activity type, the time from the first start to
// the last completion in a run and its children.
func phaseTimes(st *stack, id, runID string) (string, error) {
	type span struct{ first, last time.Time }
	spans := map[string]*span{}
	var order []string
	var walk func(id, runID string) error
	walk = func(id, runID string) error {
		iter := st.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		types := map[int64]string{}
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				return err
			}
			t := ev.GetEventTime().AsTime()
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				types[ev.GetEventId()] = a.GetActivityType().GetName()
			}
			name := ""
			if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
				name = types[a.GetScheduledEventId()]
			}
			if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
				name = types[a.GetScheduledEventId()]
			}
			if name != "" {
				sp, ok := spans[name]
				if !ok {
					sp = &span{first: t, last: t}
					spans[name] = sp
					order = append(order, name)
				}
				if t.Before(sp.first) {
					sp.first = t
				}
				if t.After(sp.last) {
					sp.last = t
				}
			}
			if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
				if err := walk(a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(id, runID); err != nil {
		return "", err
	}
	var parts []string
	for _, name := range order {
		parts = append(parts, fmt.Sprintf("%s %v", name, spans[name].last.Sub(spans[name].first).Round(time.Millisecond)))
	}
	return strings.Join(parts, ", "), nil
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

func isolation(c *config, st *stack, s *site) error {
	n := min(c.urls, 1000)
	alone, _, err := durable(st, s.smallURLs(n, "iso-alone"), c.inFlight)
	if err != nil {
		return err
	}
	// The load: large bodies, fetched first while their CPU queue has no
	// worker, then hashed by a CPU pool of the default size while the
	// same small batch runs again.
	ctx := context.Background()
	load, pool, err := prefetched(st, s.largeURLs(c.loadBodies, c.loadSize, "iso-load"), "bench-iso-cpu")
	if err != nil {
		return err
	}
	defer pool.Stop()
	for !hashing(st, load) {
		time.Sleep(10 * time.Millisecond) // polling the server's view
	}
	loaded, _, err := durable(st, s.smallURLs(n, "iso-loaded"), c.inFlight)
	if err != nil {
		return err
	}
	stillHashing := hashing(st, load)
	if err := load.Get(ctx, nil); err != nil {
		return err
	}
	a, l := fetchLatencies(alone), fetchLatencies(loaded)
	a50, a99, l50, l99 := percentile(a, .5), percentile(a, .99), percentile(l, .5), percentile(l, .99)
	fmt.Printf("\n== isolation: %d small fetches (%v latency), alone and while a CPU pool of %d slots hashes %d x %d MiB bodies\n",
		n, c.latency, slotsOf(st.cfg), c.loadBodies, c.loadSize>>20)
	fmt.Printf("fetch latency alone        p50 %4d ms  p99 %4d ms\n", a50, a99)
	fmt.Printf("fetch latency under load   p50 %4d ms  p99 %4d ms  (still hashing when the batch ended: %v)\n", l50, l99, stillHashing)
	fmt.Printf("p99 ratio loaded/alone     %.2f\n", float64(l99)/float64(max(a99, 1)))
	return nil
}

// prefetched starts a batch of large bodies whose CPU queue has no worker,
// waits until every body is fetched and waiting to be hashed, then starts
// a CPU pool (of the stack's size) on that queue: what follows is hashing
// alone, not hashing beside downloads.
func prefetched(st *stack, urls []string, queue string) (client.WorkflowRun, *workers.Pools, error) {
	run, err := st.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, AttemptTimeout: "10m", CPUTaskQueue: queue, MaxInFlight: len(urls)})
	if err != nil {
		return nil, nil, err
	}
	if err := waitPending(st, run, "HashChunk", len(urls)); err != nil {
		return nil, nil, err
	}
	cfg := st.cfg
	cfg.Role, cfg.CPUTaskQueue = workers.RoleCPU, queue
	pool, err := workers.Start(st.client, cfg)
	if err != nil {
		return nil, nil, err
	}
	return run, pool, nil
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

func hashRate(c *config, st *stack, s *site) error {
	// Raw sha256 on one core over an in-memory buffer.
	buf := make([]byte, 64<<20)
	_, _ = io.ReadFull(demosite.Pattern{}, buf)
	start := time.Now()
	const rounds = 4
	for range rounds {
		h := sha256.New()
		h.Write(buf)
		_ = h.Sum(nil)
	}
	raw := float64(rounds*len(buf)) / time.Since(start).Seconds() / (1 << 20)
	slots := slotsOf(st.cfg)

	hashStart, hashEnd := time.Time{}, time.Time{}
	// Fetch every body first, then start a CPU worker of its own: the
	// figure is hashing alone, not hashing beside downloads.
	ctx := context.Background()
	run, pool, err := prefetched(st, s.largeURLs(c.loadBodies, c.loadSize, "hash"), "bench-hash-cpu")
	if err != nil {
		return err
	}
	defer pool.Stop()
	if err := run.Get(ctx, nil); err != nil {
		return err
	}
	// The hashing phase: first hash start to last hash end, from history.
	iter := st.client.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]bool{}
	started := map[int64]time.Time{}
	var busy time.Duration
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return err
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "HashChunk" {
			scheduled[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] {
			t := ev.GetEventTime().AsTime()
			started[a.GetScheduledEventId()] = t
			if hashStart.IsZero() || t.Before(hashStart) {
				hashStart = t
			}
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] {
			t := ev.GetEventTime().AsTime()
			busy += t.Sub(started[a.GetScheduledEventId()])
			if t.After(hashEnd) {
				hashEnd = t
			}
		}
	}
	total := float64(int64(c.loadBodies)*c.loadSize) / (1 << 20)
	got := total / hashEnd.Sub(hashStart).Seconds()
	fmt.Printf("\n== hash: %d x %d MiB bodies on %d CPU slots\n", c.loadBodies, c.loadSize>>20, slots)
	fmt.Printf("raw crypto/sha256, one core      %7.0f MB/s  (x %d slots = %.0f MB/s)\n", raw, slots, raw*float64(slots))
	perSlot := total / busy.Seconds() * float64(slots)
	fmt.Printf("hash activities, first start to last end   %7.0f MB/s  ratio to raw x slots %.2f\n", got, got/(raw*float64(slots)))
	fmt.Printf("hash activities, bytes per busy slot-second %7.0f MB/s  ratio to raw x slots %.2f  (without Temporal's dispatch between activities)\n", perSlot, perSlot/(raw*float64(slots)))
	return nil
}

// rss runs a worker process alone on its own task queues, has it fetch and
// hash one large body, and reads its peak resident memory.
func rss(c *config, st *stack, s *site) error {
	bin := filepath.Join(st.dir, "worker")
	build := exec.Command("go", "build", "-o", bin, "./worker")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the worker: %w", err)
	}
	queue := "bench-rss"
	cmd := exec.Command(bin, "--allow", "127.0.0.1", "--task-queue", queue, "--cpu-task-queue", queue+"-cpu", "--blob-dir", filepath.Join(st.dir, "rss-blobs"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+st.srv.FrontendHostPort(), "TEMPORAL_NAMESPACE=default")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ctx := context.Background()
	urls := s.largeURLs(1, c.rssSize, "rss")
	start := time.Now()
	run, err := st.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: queue + "-cpu", AttemptTimeout: "10m"})
	if err != nil {
		return err
	}
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		return err
	}
	if out.OK != 1 {
		return fmt.Errorf("the large body failed: %+v", out.Results)
	}
	hwm, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("\n== rss: one worker process (fetch and CPU pools) fetches and hashes a %d MiB body in %v\n", c.rssSize>>20, time.Since(start).Round(time.Millisecond))
	fmt.Printf("peak resident memory (VmHWM)   %d MiB  (size %d bytes, sha256 %s…)\n", hwm>>20, out.Results[0].Size, out.Results[0].SHA256[:16])
	return nil
}

func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func historyReport(c *config, st *stack) error {
	largest, where := 0, ""
	for _, run := range c.historyRuns {
		n, children, err := countEvents(st, run.GetID(), run.GetRunID())
		if err != nil {
			return err
		}
		if n > largest {
			largest, where = n, run.GetID()
		}
		for _, ch := range children {
			m, _, err := countEvents(st, ch[0], ch[1])
			if err != nil {
				return err
			}
			if m > largest {
				largest, where = m, ch[0]
			}
		}
	}
	if where != "" {
		fmt.Printf("\n== history: the largest run (%s) has %d events (warning line 10,240)\n", where, largest)
	}
	return nil
}

func countEvents(st *stack, id, runID string) (int, [][2]string, error) {
	iter := st.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	var children [][2]string
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return 0, nil, err
		}
		n++
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			children = append(children, [2]string{a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()})
		}
	}
	return n, children, nil
}

// loopback is the client configuration of both sides: the local site only.
func loopback(perHost int) activities.ClientConfig {
	return activities.ClientConfig{MaxConnsPerHost: perHost, Guard: activities.Guard{Allow: []string{"127.0.0.1"}}}
}

func defaultDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return "."
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
