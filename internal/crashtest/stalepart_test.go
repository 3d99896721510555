package crashtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// gate is a TCP proxy on loopback in front of the Temporal server, for one
// worker. cut drops the worker's connections (the server forgets its
// polls, so it hands a frozen worker no task) and holds every new one, no
// byte through, until lift.
type gate struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	open  chan struct{} // closed while bytes go through
	conns []net.Conn
}

func newGate(t *testing.T, target string) *gate {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{l: l, target: target, open: make(chan struct{})}
	close(g.open)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go g.serve(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		g.drop()
	})
	return g
}

func (g *gate) addr() string { return g.l.Addr().String() }

func (g *gate) track(c net.Conn) {
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
}

func (g *gate) wait() {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	<-open
}

func (g *gate) serve(c net.Conn) {
	g.track(c)
	g.wait()
	s, err := net.Dial("tcp", g.target)
	if err != nil {
		c.Close()
		return
	}
	g.track(s)
	go g.pipe(s, c)
	g.pipe(c, s)
}

func (g *gate) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			g.wait()
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (g *gate) drop() {
	g.mu.Lock()
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (g *gate) cut() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
	g.drop()
}

func (g *gate) lift() {
	g.mu.Lock()
	close(g.open)
	g.mu.Unlock()
}

// holdSite serves /small/N pages at once and one large body, /big, with
// a strong ETag, as the test says: its request 1 sends a first part and
// holds until cut is closed, then drops the connection; request 2 is
// served whole (or its range); later ones send a first part and hold
// until their client goes away.
type holdSite struct {
	*httptest.Server
	body []byte
	cut  chan struct{}
	held chan int // the number of a /big request that sent its first part
	gone chan int // the number of a held request whose client went away

	mu     sync.Mutex
	ranges []string
	smalls int
}

const firstPart = 1 << 20

func newHoldSite(t *testing.T, size int) *holdSite {
	body := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(body)
	s := &holdSite{body: body, cut: make(chan struct{}), held: make(chan int, 8), gone: make(chan int, 8)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *holdSite) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/small/") {
		s.mu.Lock()
		s.smalls++
		s.mu.Unlock()
		_, _ = io.WriteString(w, "small page "+r.URL.Path)
		return
	}
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	n := len(s.ranges)
	s.mu.Unlock()
	w.Header().Set("ETag", `"hold-site-v1"`)
	if n == 2 {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.body))
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(s.body)))
	_, _ = w.Write(s.body[:firstPart])
	w.(http.Flusher).Flush()
	s.held <- n
	if n == 1 {
		select {
		case <-s.cut:
		case <-r.Context().Done():
		}
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close() // the body ends short
		}
		return
	}
	<-r.Context().Done()
	s.gone <- n
}

func (s *holdSite) counts() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.smalls, append([]string(nil), s.ranges...)
}

// waitHeld waits for request want of /big to send its first part.
func (s *holdSite) waitHeld(t *testing.T, ch <-chan int, want int, what string) {
	t.Helper()
	select {
	case n := <-ch:
		if n != want {
			t.Fatalf("%s: request %d of /big, want request %d", what, n, want)
		}
	case <-time.After(2 * time.Minute):
		_, ranges := s.counts()
		t.Fatalf("%s: request %d of /big never came (requests %q)", what, want, ranges)
	}
}

// TestStaleAttemptLeavesNoPartAfterItsBatch: a fetch worker frozen
// mid-body past its heartbeat timeout while the batch goes on without it
// (another worker fetches the body, the batch ends and removes its blobs)
// wakes up after all that: its body ends short, and its chunk's own retry
// starts a new part (under the batch's removed directory) before its next
// heartbeat tells it that the server no longer knows it. That part is of
// no use to anyone, and nothing else would remove it: when the stale
// attempt stops, nothing is left under batches/.
func TestStaleAttemptLeavesNoPartAfterItsBatch(t *testing.T) {
	c := newServer(t)
	var target string
	for _, kv := range c.fetch.env {
		if v, ok := strings.CutPrefix(kv, "TEMPORAL_ADDRESS="); ok {
			target = v
		}
	}
	g := newGate(t, target)
	env := append(append([]string{}, c.fetch.env...), "TEMPORAL_ADDRESS="+g.addr())
	stale := &proc{t: t, name: "worker", env: env, args: c.fetch.args}
	stale.start()
	c.cpu.start()
	t.Cleanup(func() {
		signal(stale, syscall.SIGCONT)
		stale.stop()
		if t.Failed() {
			t.Logf("stale fetch worker:\n%s", tail(stale.out))
		}
	})

	// 101 URLs: chunks of two, the last of /big alone, fetched in a chunk
	// activity with its own retries.
	const size = 8 << 20
	site := newHoldSite(t, size)
	var urls []string
	for i := range 100 {
		urls = append(urls, fmt.Sprintf("%s/small/%d", site.URL, i))
	}
	urls = append(urls, site.URL+"/big")
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: urls, AttemptTimeout: "5m", InitialBackoff: "100ms", MaxAttempts: 5})
	if err != nil {
		t.Fatal(err)
	}
	site.waitHeld(t, site.held, 1, "the first worker fetching /big")
	// Once /big's chunk is all the worker runs, it freezes, and the
	// server hears no more of it.
	c.waitOnlyFetch(run, stale)
	signal(stale, syscall.SIGSTOP)
	g.cut()
	t.Logf("froze fetch worker %d mid-body of /big and cut it off", stale.cmd.Process.Pid)

	// Another worker takes /big over after the heartbeat timeout; the
	// batch ends, and removes its blobs.
	c.fetch.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	sum := sha256.Sum256(site.body)
	if big := out.Results[len(out.Results)-1]; out.OK != len(urls) || big.SHA256 != hex.EncodeToString(sum[:]) || big.Size != size {
		t.Fatalf("%d of %d ok, /big %+v: want every URL ok, /big with its sha256", out.OK, len(urls), big)
	}
	if left := leftBlobs(c.blobDir); len(left) > 0 {
		t.Fatalf("the batch ended leaving %d blobs, e.g. %s", len(left), left[0])
	}

	// The frozen worker wakes up still cut off: its body ends short, and
	// the chunk's retry of /big gets a first part.
	close(site.cut)
	signal(stale, syscall.SIGCONT)
	site.waitHeld(t, site.held, 3, "the woken worker retrying /big")
	made := waitForBlob(t, c.blobDir)
	t.Logf("the woken worker made %s after its batch ended", made)
	// Its next heartbeat reaches the server, which no longer knows it.
	g.lift()
	site.waitHeld(t, site.gone, 3, "the woken worker giving /big up")
	stale.stop()
	_, ranges := site.counts()
	t.Logf("requests of /big: %q", ranges)
	if left := leftBlobs(c.blobDir); len(left) > 0 {
		t.Errorf("the stale attempt left %d blobs after its batch, e.g. %s", len(left), left[0])
	}
}

// waitOnlyFetch waits until the batch's one pending activity is a fetch
// started on worker p.
func (c *cluster) waitOnlyFetch(run client.WorkflowRun, p *proc) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		d, err := c.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err == nil {
			pas := d.GetPendingActivities()
			if len(pas) == 1 && pas[0].GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED && byIdentity([]*proc{p}, pas[0].GetLastWorkerIdentity()) == p {
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the server's pending activities
	}
	t.Fatal("the batch never came down to the one fetch of /big on the first worker")
}

// waitForBlob waits for a blob to appear under batches/ and returns it.
func waitForBlob(t *testing.T, blobDir string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if left := leftBlobs(blobDir); len(left) > 0 {
			return left[0]
		}
		time.Sleep(10 * time.Millisecond) // polling the blob directory
	}
	t.Fatal("the woken worker made no blob for its retry")
	return ""
}
