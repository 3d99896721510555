// Package crashtest proves batches survive crashes: the dev server, a
// fetch worker and a CPU worker run as separate processes, and the test
// kills them with SIGKILL mid-batch and starts them again.
package crashtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/workflows"
)

var bin string // directory of the built commands

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crashtest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for _, pkg := range []string{"worker", "cmd/devserver", "examples/customprocessor"} {
		cmd := exec.Command("go", "build", "-o", dir, "../../"+pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a command the test can kill and start again.
type proc struct {
	t     *testing.T
	name  string   // a command in bin
	path  string   // or this executable
	wrap  []string // run under this command (ip netns exec NS)
	args  []string
	env   []string
	cmd   *exec.Cmd
	out   *output
	done  chan struct{} // closed when the run has ended
	cpuMu sync.Mutex
	cpu   time.Duration // CPU time of the runs that have ended
}

func (p *proc) start() {
	p.t.Helper()
	p.out = &output{}
	exe := p.path
	if exe == "" {
		exe = filepath.Join(bin, p.name)
	}
	argv := append(append(append([]string{}, p.wrap...), exe), p.args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	dieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	cmd, done := p.cmd, make(chan struct{})
	p.done = done
	go func() {
		_ = cmd.Wait()
		ps := cmd.ProcessState
		p.cpuMu.Lock()
		p.cpu += ps.UserTime() + ps.SystemTime()
		p.cpuMu.Unlock()
		close(done)
	}()
}

// exited tells whether the current run has ended (it may have crashed).
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cpuTime is the CPU time of the runs that have ended.
func (p *proc) cpuTime() time.Duration {
	p.cpuMu.Lock()
	defer p.cpuMu.Unlock()
	return p.cpu
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop() {
	if p.cmd == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

type page struct {
	path string
	body []byte
}

// batchSite serves a few hundred pages: most small, some slow, some large
// (with an ETag, so cut-off downloads resume).
func batchSite(t *testing.T) (*httptest.Server, []page) {
	r := rand.New(rand.NewPCG(1, 2))
	var pages []page
	for i := range 300 {
		pages = append(pages, page{fmt.Sprintf("/small/%d", i), []byte(fmt.Sprintf("small page %d %d", i, r.Int()))})
	}
	for i := range 20 {
		pages = append(pages, page{fmt.Sprintf("/slow/%d", i), []byte(fmt.Sprintf("slow page %d", i))})
	}
	for i := range 6 {
		b := make([]byte, 8<<20)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		pages = append(pages, page{fmt.Sprintf("/large/%d", i), b})
	}
	byPath := map[string][]byte{}
	for _, p := range pages {
		byPath[p.path] = p.body
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/slow/"):
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		case strings.HasPrefix(r.URL.Path, "/small/"):
			time.Sleep(50 * time.Millisecond)
		case strings.HasPrefix(r.URL.Path, "/large/"):
			w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256(body)))
			// Slow enough that a kill lands mid-body.
			http.ServeContent(w, r, "", time.Time{}, &slowReader{r: bytes.NewReader(body)})
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, pages
}

type slowReader struct{ r *bytes.Reader }

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 64<<10)])
}

func (s *slowReader) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }

type cluster struct {
	t       *testing.T
	server  *proc
	fetch   *proc
	cpu     *proc
	client  client.Client
	blobDir string
}

func newCluster(t *testing.T) *cluster {
	c := newServer(t)
	c.fetch.start()
	c.cpu.start()
	return c
}

// newServer is a cluster whose workers are not started yet.
func newServer(t *testing.T) *cluster { return newServerWith(t) }

// newServerWith is newServer with more flags for the dev server (later
// flags win: "--ui-port", "8233" gives it a Web UI).
func newServerWith(t *testing.T, serverArgs ...string) *cluster {
	dir := t.TempDir()
	port := freeport.Run(t, 8)
	hostPort := fmt.Sprintf("127.0.0.1:%d", port)
	c := &cluster{t: t, blobDir: filepath.Join(dir, "blobs")}
	c.server = &proc{t: t, name: "devserver", args: []string{"--db", filepath.Join(dir, "server.sqlite"), "--port", fmt.Sprint(port), "--ui-port", "0"}}
	c.server.args = append(c.server.args, serverArgs...)
	// One release: its fetch and CPU workers (and a custom CPU worker)
	// are one deployment version, as a release's CI would stamp them.
	env := []string{"TEMPORAL_ADDRESS=" + hostPort, "TEMPORAL_NAMESPACE=default", "BATCHFETCH_BUILD_ID=crashtest"}
	c.fetch = &proc{t: t, name: "worker", env: env, args: []string{"--role", "fetch", "--allow", "127.0.0.1", "--blob-dir", c.blobDir, "--log-level", "warn"}}
	c.cpu = &proc{t: t, name: "worker", env: env, args: []string{"--role", "cpu", "--blob-dir", c.blobDir, "--log-level", "warn"}}
	c.server.start()
	c.waitServer(hostPort)
	var err error
	c.client, err = client.Dial(client.Options{HostPort: hostPort, Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.client.Close()
		c.fetch.stop()
		c.cpu.stop()
		c.server.stop()
		if t.Failed() {
			t.Logf("fetch worker:\n%s\ncpu worker:\n%s\nserver:\n%s", tail(c.fetch.out), tail(c.cpu.out), tail(c.server.out))
		}
	})
	return c
}

// output collects a process's output; the test reads it while the
// process writes.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func tail(b *output) string {
	if b == nil {
		return ""
	}
	s := b.String()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

func (c *cluster) waitServer(hostPort string) {
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(c.server.out.String(), "temporal server at") {
		if time.Now().After(deadline) || c.server.exited() {
			c.t.Fatalf("the dev server did not start:\n%s", c.server.out)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the process's ready line
	}
}

// waitProgress waits until the batch has done at least n URLs, and fails
// the test if it is already finished (a kill would then prove nothing).
func (c *cluster) waitProgress(run client.WorkflowRun, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := c.client.QueryWorkflow(ctx, run.GetID(), run.GetRunID(), workflows.ProgressQuery)
		cancel()
		var p workflows.Progress
		if err == nil && v.Get(&p) == nil && p.Done >= n {
			if p.Done == p.Total {
				c.t.Fatalf("the batch finished before the kill: %+v", p)
			}
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the batch never reached %d URLs done (%+v, %v)", n, p, err)
		}
		time.Sleep(100 * time.Millisecond) // polling the progress query
	}
}

// check verifies the result: every URL exactly once, in order, with the
// right hash; no blob left; and interrupted activities visible as retries.
func (c *cluster) check(run client.WorkflowRun, pages []page, base string, wantRetries bool) {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	if len(out.Results) != len(pages) || out.OK != len(pages) {
		t.Fatalf("%d results, %d ok, want %d ok", len(out.Results), out.OK, len(pages))
	}
	lost, dup, wrong := 0, 0, 0
	seen := map[string]int{}
	for i, r := range out.Results {
		seen[r.URL]++
		want := sha256.Sum256(pages[i].body)
		if r.URL != base+pages[i].path {
			lost++
		} else if r.SHA256 != hex.EncodeToString(want[:]) || r.Size != int64(len(pages[i].body)) {
			wrong++
		}
	}
	for _, n := range seen {
		if n > 1 {
			dup += n - 1
		}
	}
	if lost+dup+wrong > 0 {
		t.Errorf("lost %d, duplicated %d, wrong %d", lost, dup, wrong)
	}
	left := leftBlobs(c.blobDir)
	if len(left) > 0 {
		t.Errorf("%d blobs left behind, e.g. %s", len(left), left[0])
	}
	retried := 0
	iter := c.client.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
			retried++
		}
	}
	if wantRetries && retried == 0 {
		t.Errorf("no activity attempt was retried: the kills interrupted nothing")
	}
	t.Logf("%d URLs ok; %d activities ran more than one attempt", out.OK, retried)
}

func startBatch(t *testing.T, c *cluster, base string, pages []page) client.WorkflowRun {
	var urls []string
	for _, p := range pages {
		urls = append(urls, base+p.path)
	}
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: urls, MaxInFlight: 16, AttemptTimeout: "2m"})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestWorkersKilledMidBatch(t *testing.T) {
	site, pages := batchSite(t)
	c := newCluster(t)
	run := startBatch(t, c, site.URL, pages)
	c.waitProgress(run, len(pages)/4)
	c.fetch.kill()
	c.cpu.kill()
	c.fetch.start()
	c.cpu.start()
	c.waitProgress(run, len(pages)/2)
	c.fetch.kill() // and once more, later in the batch
	c.fetch.start()
	c.check(run, pages, site.URL, true)
}

func TestServerKilledMidBatch(t *testing.T) {
	site, pages := batchSite(t)
	c := newCluster(t)
	run := startBatch(t, c, site.URL, pages)
	c.waitProgress(run, len(pages)/3)
	c.server.kill()
	c.server.start() // same SQLite file, same ports
	c.waitServer("")
	// Activities run on while the server is down and report when it is
	// back: a server crash need not interrupt any of them.
	c.check(run, pages, site.URL, false)
}

// leftBlobs lists the files left under a blob store's batches/: bodies,
// packs and chunk files a finished batch should have removed (its results
// file, under results/, stays).
func leftBlobs(blobDir string) []string {
	var left []string
	_ = filepath.WalkDir(filepath.Join(blobDir, "batches"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	return left
}
