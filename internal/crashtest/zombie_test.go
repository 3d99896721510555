package crashtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/workflows"
)

// The adversarial tests: worker processes frozen (SIGSTOP) past their
// heartbeat timeout while they download or hash, their work retried on
// another worker, then thawed (SIGCONT) so the stale attempt wakes up and
// goes on; others killed (SIGKILL) and restarted. The site serves large
// bodies slowly, some of which change on every request. Whatever happens,
// every URL has exactly one result, and an ok result's sha256 and size
// are those of one complete body the site sent for it, computed by the
// site from the bytes it wrote.

// shiftySite serves three kinds of pages:
//   - /changing/N: a new body (and weak ETag) on every request, Range
//     ignored;
//   - /stable/N: one body with a strong ETag, Range and If-Range honoured;
//   - /small/N: a small fixed body.
//
// Large bodies go out at about rate bytes per second per request.
type shiftySite struct {
	*httptest.Server
	size int
	rate int

	mu       sync.Mutex
	stable   map[string][]byte
	small    map[string][]byte
	version  map[string]int            // requests so far, per path
	complete map[string]map[string]int // path -> sha256 of each body sent whole -> its request number
	active   map[string]*sending       // path -> the request under way, if any
}

type sending struct {
	sent int64
}

func newShiftySite(t *testing.T, changing, stable, small, size, rate int) (*shiftySite, []string) {
	s := &shiftySite{size: size, rate: rate, stable: map[string][]byte{}, small: map[string][]byte{},
		version: map[string]int{}, complete: map[string]map[string]int{}, active: map[string]*sending{}}
	var paths []string
	for i := range changing {
		paths = append(paths, fmt.Sprintf("/changing/%d", i))
	}
	for i := range stable {
		p := fmt.Sprintf("/stable/%d", i)
		s.stable[p] = seeded(uint64(1000+i), 0, size)
		paths = append(paths, p)
	}
	for i := range small {
		p := fmt.Sprintf("/small/%d", i)
		s.small[p] = []byte(fmt.Sprintf("small page %d", i))
		paths = append(paths, p)
	}
	// Interleave the kinds, so large bodies run all through the batch.
	r := rand.New(rand.NewPCG(3, 4))
	r.Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s, paths
}

// seeded is a reproducible pseudo-random body.
func seeded(seed, version uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
		key[8+i] = byte(version >> (8 * i))
	}
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

func (s *shiftySite) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	s.mu.Lock()
	s.version[path]++
	v := s.version[path]
	s.mu.Unlock()
	switch {
	case strings.HasPrefix(path, "/small/"):
		b, ok := s.small[path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	case strings.HasPrefix(path, "/stable/"):
		b, ok := s.stable[path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		st := s.track(path)
		defer s.untrack(path, st)
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(b[:64])))
		http.ServeContent(&countingWriter{ResponseWriter: w, st: st, s: s}, r, "", time.Time{}, &throttled{r: bytes.NewReader(b), rate: s.rate})
	case strings.HasPrefix(path, "/changing/"):
		n, err := strconv.Atoi(strings.TrimPrefix(path, "/changing/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		body := seeded(uint64(n), uint64(v), s.size)
		st := s.track(path)
		defer s.untrack(path, st)
		// A weak ETag, as dynamic pages often have: never a validator
		// for a Range request, so every retry downloads the whole body.
		w.Header().Set("ETag", fmt.Sprintf(`W/"v%d"`, v))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		sum := sha256.New()
		cw := &countingWriter{ResponseWriter: w, st: st, s: s, sum: sum}
		if _, err := copyThrottled(r.Context(), cw, body, s.rate); err != nil {
			return // cut off: not a body the site sent whole
		}
		s.mu.Lock()
		if s.complete[path] == nil {
			s.complete[path] = map[string]int{}
		}
		s.complete[path][hex.EncodeToString(sum.Sum(nil))] = v
		s.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

func (s *shiftySite) track(path string) *sending {
	st := &sending{}
	s.mu.Lock()
	s.active[path] = st
	s.mu.Unlock()
	return st
}

func (s *shiftySite) untrack(path string, st *sending) {
	s.mu.Lock()
	if s.active[path] == st {
		delete(s.active, path)
	}
	s.mu.Unlock()
}

// requests is how many requests path has had.
func (s *shiftySite) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version[path]
}

// sent is how far the request under way for path got (-1: none).
func (s *shiftySite) sent(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.active[path]; ok {
		return st.sent
	}
	return -1
}

// want says whether sum and size are those of a body the site sent whole
// for path, in answer to a request numbered after (0: any).
func (s *shiftySite) want(path, sum string, size int64, after int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(path, "/changing/"):
		v, ok := s.complete[path][sum]
		return size == int64(s.size) && ok && v > after
	case strings.HasPrefix(path, "/stable/"):
		want := sha256.Sum256(s.stable[path])
		return size == int64(len(s.stable[path])) && sum == hex.EncodeToString(want[:])
	default:
		want := sha256.Sum256(s.small[path])
		return size == int64(len(s.small[path])) && sum == hex.EncodeToString(want[:])
	}
}

type countingWriter struct {
	http.ResponseWriter
	s   *shiftySite
	st  *sending
	sum hash.Hash
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	c.s.mu.Lock()
	c.st.sent += int64(n)
	c.s.mu.Unlock()
	return n, err
}

func copyThrottled(ctx context.Context, w http.ResponseWriter, body []byte, rate int) (int, error) {
	const piece = 64 << 10
	every := time.Duration(float64(time.Second) * piece / float64(rate))
	total := 0
	for off := 0; off < len(body); off += piece {
		n, err := w.Write(body[off:min(off+piece, len(body))])
		total += n
		if err != nil {
			return total, err
		}
		w.(http.Flusher).Flush()
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(every): // the site's pace
		}
	}
	return total, nil
}

// throttled reads at about rate bytes per second.
type throttled struct {
	r    *bytes.Reader
	rate int
}

func (t *throttled) Read(p []byte) (int, error) {
	n, err := t.r.Read(p[:min(len(p), 64<<10)])
	time.Sleep(time.Duration(float64(time.Second) * float64(n) / float64(t.rate))) // the site's pace
	return n, err
}

func (t *throttled) Seek(off int64, whence int) (int64, error) { return t.r.Seek(off, whence) }

// fleet is a dev server and several worker processes of each role, all
// sharing one blob directory.
type fleet struct {
	t       *testing.T
	ctx     context.Context // canceled when the test ends
	server  *proc
	fetch   []*proc
	cpu     []*proc
	client  client.Client
	blobDir string
}

func newFleet(t *testing.T, fetchers, hashers int) *fleet {
	dir := t.TempDir()
	port := freeport.Run(t, 8)
	hostPort := fmt.Sprintf("127.0.0.1:%d", port)
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{t: t, ctx: ctx, blobDir: filepath.Join(dir, "blobs")}
	f.server = &proc{t: t, name: "devserver", args: []string{"--db", filepath.Join(dir, "server.sqlite"), "--port", fmt.Sprint(port), "--ui-port", "0"}}
	f.server.start()
	c := &cluster{t: t, server: f.server}
	c.waitServer(hostPort)
	var err error
	f.client, err = client.Dial(client.Options{HostPort: hostPort, Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"TEMPORAL_ADDRESS=" + hostPort, "TEMPORAL_NAMESPACE=default"}
	// Default flags but for the address guard (the site is on loopback)
	// and the shared blob directory.
	for range fetchers {
		p := &proc{t: t, name: "worker", env: env, args: []string{"--role", "fetch", "--allow", "127.0.0.1", "--blob-dir", f.blobDir, "--log-level", "warn"}}
		p.start()
		f.fetch = append(f.fetch, p)
	}
	for range hashers {
		p := &proc{t: t, name: "worker", env: env, args: []string{"--role", "cpu", "--blob-dir", f.blobDir, "--log-level", "warn"}}
		p.start()
		f.cpu = append(f.cpu, p)
	}
	t.Cleanup(func() {
		cancel() // fault injectors still looking give up
		f.client.Close()
		for _, p := range f.all() {
			_ = p.cmd.Process.Signal(syscall.SIGCONT) // a frozen process cannot stop
			p.stop()
		}
		f.server.stop()
		if t.Failed() {
			for i, p := range f.fetch {
				t.Logf("fetch worker %d:\n%s", i, tail(p.out))
			}
			for i, p := range f.cpu {
				t.Logf("cpu worker %d:\n%s", i, tail(p.out))
			}
		}
	})
	return f
}

func (f *fleet) all() []*proc { return append(append([]*proc{}, f.fetch...), f.cpu...) }

// byIdentity finds the worker process a Temporal worker identity
// (pid@host@queue) names.
func byIdentity(procs []*proc, identity string) *proc {
	pid, err := strconv.Atoi(strings.SplitN(identity, "@", 2)[0])
	if err != nil {
		return nil
	}
	for _, p := range procs {
		if p.cmd != nil && !p.exited() && p.cmd.Process.Pid == pid {
			return p
		}
	}
	return nil
}

// pending lists the batch's running activities; running is false once
// the batch is closed or the test is over.
func (f *fleet) pending(run client.WorkflowRun) (pas []*workflowpb.PendingActivityInfo, running bool) {
	if f.ctx.Err() != nil {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	d, err := f.client.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
	if err != nil {
		return nil, f.ctx.Err() == nil // the server may be restarting: ask again
	}
	return d.GetPendingActivities(), d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

func started(pa *workflowpb.PendingActivityInfo) bool {
	return pa.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED
}

// fetchIndex is the index of the URL a fetch activity works on: fetch-N
// (a chunk of one URL, N its index) or url-N (a URL's own activity, N
// from 1).
func fetchIndex(id string) (int, bool) {
	if n, ok := strings.CutPrefix(id, "url-"); ok {
		i, err := strconv.Atoi(n)
		return i - 1, err == nil
	}
	i, err := strconv.Atoi(strings.TrimPrefix(id, "fetch-"))
	return i, err == nil && strings.HasPrefix(id, "fetch-")
}

func signal(p *proc, sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
}

// freezeFetchMidDownload freezes the fetch worker downloading one of the
// paths (at least 4 MiB in), waits until the server has given up on that
// attempt and the retry is downloading on another worker, then thaws it.
func (f *fleet) freezeFetchMidDownload(run client.WorkflowRun, s *shiftySite, urls []string, prefix string) (string, int, *proc) {
	t := f.t
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		pas, running := f.pending(run)
		if !running {
			return "", 0, nil
		}
		for _, pa := range pas {
			i, ok := fetchIndex(pa.GetActivityId())
			if !ok || !started(pa) || i >= len(urls) {
				continue
			}
			path := strings.TrimPrefix(urls[i], s.URL)
			if !strings.HasPrefix(path, prefix) || s.sent(path) < 4<<20 {
				continue
			}
			p := byIdentity(f.fetch, pa.GetLastWorkerIdentity())
			if p == nil {
				continue
			}
			before := s.requests(path)
			signal(p, syscall.SIGSTOP)
			t.Logf("froze fetch worker %d mid-download of %s (%d bytes sent)", p.cmd.Process.Pid, path, s.sent(path))
			// The server gives up on the attempt after its heartbeat
			// timeout; the retry runs on another worker.
			for s.requests(path) == before || s.sent(path) < 1<<20 {
				if time.Now().After(deadline) {
					signal(p, syscall.SIGCONT)
					t.Fatalf("%s was not retried on another worker while its worker was frozen", path)
				}
				time.Sleep(50 * time.Millisecond) // polling the site's counters
			}
			signal(p, syscall.SIGCONT)
			t.Logf("thawed it while the retry downloads %s (request %d)", path, s.requests(path))
			return path, before, p
		}
		time.Sleep(20 * time.Millisecond) // polling the server's pending activities
	}
	return "", 0, nil
}

// freezeCPUMidHash freezes a CPU worker while it hashes a large body,
// waits until the server has given up on that attempt and retried it,
// then thaws it. A freeze that turns out to have caught nothing (the hash
// had finished as the signal landed) is undone and another hash tried.
// It runs beside the test's goroutine: it reports, it does not fail.
func (f *fleet) freezeCPUMidHash(run client.WorkflowRun, urls []string, large func(string) bool) (*proc, error) {
	t := f.t
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		pas, running := f.pending(run)
		if !running {
			return nil, nil
		}
		for _, pa := range pas {
			i, err := strconv.Atoi(strings.TrimPrefix(pa.GetActivityId(), "hash-"))
			if err != nil || !started(pa) || i >= len(urls) || !large(urls[i]) {
				continue
			}
			p := byIdentity(f.cpu, pa.GetLastWorkerIdentity())
			if p == nil {
				continue
			}
			signal(p, syscall.SIGSTOP)
			// The server retries the hash only if this attempt was still
			// running: then a later attempt shows up.
			var retried, gone bool
			for !retried && !gone {
				if time.Now().After(deadline) || f.ctx.Err() != nil {
					signal(p, syscall.SIGCONT)
					return nil, fmt.Errorf("the hash of %s was neither retried nor finished while its worker was frozen", urls[i])
				}
				time.Sleep(100 * time.Millisecond) // polling the server's pending activities
				now, running := f.pending(run)
				gone = !running
				found := false
				for _, q := range now {
					if q.GetActivityId() == pa.GetActivityId() {
						found = true
						retried = q.GetAttempt() > pa.GetAttempt()
					}
				}
				gone = gone || !found
			}
			if gone && f.attempts(run, pa.GetActivityId()) <= int(pa.GetAttempt()) {
				signal(p, syscall.SIGCONT) // it had finished: nothing was frozen mid-hash
				continue
			}
			signal(p, syscall.SIGCONT)
			t.Logf("froze cpu worker %d mid-hash of %s (attempt %d); thawed it after the server retried the hash", p.cmd.Process.Pid, urls[i], pa.GetAttempt())
			return p, nil
		}
		time.Sleep(5 * time.Millisecond) // polling the server's pending activities
	}
	return nil, nil
}

// attempts is the highest attempt of activity id the batch's history has
// started.
func (f *fleet) attempts(run client.WorkflowRun, id string) int {
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	scheduled := map[int64]bool{}
	most := 0
	iter := f.client.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return most
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityId() == id {
			scheduled[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] {
			most = max(most, int(a.GetAttempt()))
		}
	}
	return most
}

// killBusy SIGKILLs a worker of procs, other than spare, while it runs an
// activity of kind (fetch, hash), and starts it again. It reports whether
// it caught one.
func (f *fleet) killBusy(run client.WorkflowRun, procs []*proc, kind string, spare *proc) bool {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		pas, running := f.pending(run)
		if !running {
			return false
		}
		for _, pa := range pas {
			if _, fetching := fetchIndex(pa.GetActivityId()); !(kind == "fetch" && fetching || strings.HasPrefix(pa.GetActivityId(), kind+"-")) || !started(pa) {
				continue
			}
			if p := byIdentity(procs, pa.GetLastWorkerIdentity()); p != nil && p != spare {
				f.t.Logf("killed %s worker %d running %s", kind, p.cmd.Process.Pid, pa.GetActivityId())
				p.kill()
				p.start()
				return true
			}
		}
		time.Sleep(5 * time.Millisecond) // polling the server's pending activities
	}
	return false
}

// checkBatch waits for the batch and checks the invariant: every URL once,
// in order, ok with the sha256 and size of a body the site sent whole; no
// blob left once the workers have stopped.
// A result for stalePath must come from a request after staleBefore: the
// frozen attempt's own request was given up.
func (f *fleet) checkBatch(run client.WorkflowRun, s *shiftySite, urls []string, seed string, stalePath string, staleBefore int) {
	t := f.t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v%s", err, seed)
	}
	if len(out.Results) != len(urls) || out.OK != len(urls) || out.Failed != 0 {
		t.Errorf("%d results, %d ok, %d failed; want %d ok%s", len(out.Results), out.OK, out.Failed, len(urls), seed)
	}
	for i, r := range out.Results {
		if i >= len(urls) {
			break
		}
		if r.URL != urls[i] {
			t.Errorf("result %d is for %s, want %s%s", i, r.URL, urls[i], seed)
			continue
		}
		path := strings.TrimPrefix(r.URL, s.URL)
		if r.Outcome != workflows.OutcomeOK {
			t.Errorf("%s: %s %q%s", path, r.Outcome, r.Error, seed)
		} else if after := map[bool]int{true: staleBefore}[path == stalePath]; !s.want(path, r.SHA256, r.Size, after) {
			t.Errorf("%s: ok with sha256 %s and %d bytes, which is no body the site sent whole in answer to a live attempt (after request %d)%s", path, r.SHA256, r.Size, after, seed)
		}
	}
	// Stop every worker (a woken stale attempt included) before looking.
	for _, p := range f.all() {
		p.stop()
	}
	left := leftBlobs(f.blobDir)
	if len(left) > 0 {
		t.Errorf("%d blobs left behind, e.g. %s%s", len(left), left[0], seed)
	}
}

// retries counts the activities of the batch that ran more than one
// attempt, by kind (fetch, hash).
func (f *fleet) retries(run client.WorkflowRun) map[string]int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := map[int64]string{}
	out := map[string]int{}
	iter := f.client.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			f.t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			ids[ev.GetEventId()] = strings.SplitN(a.GetActivityId(), "-", 2)[0]
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			out[ids[a.GetScheduledEventId()]]++
		}
	}
	return out
}

func startShifty(t *testing.T, f *fleet, urls []string, maxInFlight int) client.WorkflowRun {
	run, err := f.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: urls, MaxInFlight: maxInFlight, AttemptTimeout: "2m"})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func fullURLs(s *shiftySite, paths []string) []string {
	urls := make([]string, len(paths))
	for i, p := range paths {
		urls[i] = s.URL + p
	}
	return urls
}

func isLarge(u string) bool {
	return strings.Contains(u, "/changing/") || strings.Contains(u, "/stable/")
}

// TestFrozenAndKilledWorkersNeverChangeTheAnswer freezes a fetch worker
// mid-download of a body that changes on every request until its attempt
// is retried elsewhere, then thaws it; freezes a CPU worker mid-hash the
// same way (until the server retries the hash); SIGKILLs the other fetch
// worker mid-download, and the other CPU worker when it catches it
// mid-hash, and restarts them. The batch still gives every URL one ok
// result with the hash of a body the site sent whole, the frozen
// download's from a request made after the stale one.
func TestFrozenAndKilledWorkersNeverChangeTheAnswer(t *testing.T) {
	s, paths := newShiftySite(t, 12, 12, 40, 32<<20, 4<<20)
	urls := fullURLs(s, paths)
	f := newFleet(t, 2, 2)
	run := startShifty(t, f, urls, 6)

	var wg sync.WaitGroup
	var cpuFrozen *proc
	var cpuErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		cpuFrozen, cpuErr = f.freezeCPUMidHash(run, urls, isLarge)
	}()
	frozen, before, fetchFrozen := f.freezeFetchMidDownload(run, s, urls, "/changing/")
	if fetchFrozen == nil {
		t.Fatal("no download of a changing body was caught in flight: the batch ended first")
	}
	// Then kill the other fetch worker mid-download, while the CPU freeze
	// may still be under way.
	if !f.killBusy(run, f.fetch, "fetch", fetchFrozen) {
		t.Error("no fetch was running on the other fetch worker to be killed: the batch ended first")
	}
	wg.Wait()
	if cpuErr != nil || cpuFrozen == nil {
		t.Errorf("no hash of a large body was frozen mid-hash and retried: %v", cpuErr)
	}
	if !f.killBusy(run, f.cpu, "hash", cpuFrozen) {
		t.Log("no hash was caught running on the other CPU worker to be killed")
	}
	// The frozen download's result comes from its retry, not from the
	// stale attempt, which went on reading after it was thawed.
	f.checkBatch(run, s, urls, "", frozen, before)
	retried := f.retries(run)
	if retried["fetch"]+retried["url"] == 0 || retried["hash"] == 0 {
		t.Errorf("retried activities %v: want fetches and hashes retried", retried)
	}
	t.Logf("retried activities: %v", retried)
}

// TestChaos is the randomized variant, for longer local runs: it draws
// faults (freeze a worker for 11 to 25 s, kill a worker, kill the server)
// and their times from a seed, and prints the seed on failure. Run it with
// BATCHFETCH_CHAOS_ROUNDS=N (and BATCHFETCH_CHAOS_SEED=S to replay one).
func TestChaos(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("BATCHFETCH_CHAOS_ROUNDS"))
	if rounds <= 0 {
		t.Skip("set BATCHFETCH_CHAOS_ROUNDS to run")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("BATCHFETCH_CHAOS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
		rounds = 1
	}
	for round := range rounds {
		seed := seed + uint64(round)
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			note := fmt.Sprintf(" (replay: BATCHFETCH_CHAOS_SEED=%d)", seed)
			r := rand.New(rand.NewPCG(seed, 99))
			s, paths := newShiftySite(t, 4+r.IntN(8), 4+r.IntN(8), 20+r.IntN(60), (8+r.IntN(24))<<20, (2+r.IntN(6))<<20)
			urls := fullURLs(s, paths)
			f := newFleet(t, 2, 2)
			run := startShifty(t, f, urls, 2+r.IntN(12))
			faults := 2 + r.IntN(4)
			for range faults {
				time.Sleep(time.Duration(r.IntN(8000)) * time.Millisecond) // the drawn time of the next fault
				if _, running := f.pending(run); !running {
					break
				}
				procs := f.all()
				p := procs[r.IntN(len(procs))]
				switch k := r.IntN(10); {
				case k < 5:
					d := time.Duration(11+r.IntN(15)) * time.Second
					t.Logf("freezing worker %d for %s%s", p.cmd.Process.Pid, d, note)
					signal(p, syscall.SIGSTOP)
					time.Sleep(d) // the drawn length of the freeze
					signal(p, syscall.SIGCONT)
				case k < 9:
					t.Logf("killing worker %d%s", p.cmd.Process.Pid, note)
					p.kill()
					p.start()
				default:
					t.Logf("killing the server%s", note)
					f.server.kill()
					f.server.start()
					(&cluster{t: t, server: f.server}).waitServer("")
				}
			}
			f.checkBatch(run, s, urls, note, "", 0)
		})
	}
}

func (c *countingWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }
