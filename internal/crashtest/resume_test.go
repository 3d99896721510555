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
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/workflows"
)

// rangeSite serves one large body, with an ETag and Range support, at a
// throttled rate, and counts the bytes it sends. Request k (from 1) of
// stallAfter sends that many bytes of its answer, then nothing until the
// client goes away; later requests run to the end.
type rangeSite struct {
	*httptest.Server
	body       []byte
	stallAfter []int64

	mu     sync.Mutex
	ranges []string
	sent   int64
	gone   chan int // the number of a stalled request whose client went away
	cut    chan int // the number of a request that sent its stallAfter bytes
}

func newRangeSite(t *testing.T, size int, stallAfter ...int64) *rangeSite {
	r := rand.New(rand.NewPCG(7, 8))
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(r.Uint32())
	}
	s := &rangeSite{body: body, stallAfter: stallAfter, gone: make(chan int, 8), cut: make(chan int, 8)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *rangeSite) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	n := len(s.ranges)
	s.mu.Unlock()
	limit := int64(-1)
	if n <= len(s.stallAfter) {
		limit = s.stallAfter[n-1]
	}
	w.Header().Set("ETag", `"range-site-v1"`)
	cw := &countingResponse{ResponseWriter: w, site: s, n: n, limit: limit, ctx: r.Context()}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(s.body))
	if cw.stalled {
		s.gone <- n
	}
}

// countingResponse counts what goes out, 64 KiB at a time with a pause
// between (about 16 MB/s), and stalls after limit bytes (negative: never).
type countingResponse struct {
	http.ResponseWriter
	site    *rangeSite
	n       int
	limit   int64
	wrote   int64
	ctx     context.Context
	stalled bool
}

func (c *countingResponse) Write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		if c.limit >= 0 && c.wrote >= c.limit {
			c.ResponseWriter.(http.Flusher).Flush()
			c.stalled = true
			c.site.cut <- c.n
			<-c.ctx.Done() // the client gives up on this attempt
			return done, c.ctx.Err()
		}
		k := min(len(p), 64<<10)
		if c.limit >= 0 {
			k = int(min(int64(k), c.limit-c.wrote))
		}
		m, err := c.ResponseWriter.Write(p[:k])
		c.wrote += int64(m)
		done += m
		c.site.mu.Lock()
		c.site.sent += int64(m)
		c.site.mu.Unlock()
		if err != nil {
			return done, err
		}
		p = p[m:]
		select {
		case <-time.After(4 * time.Millisecond): // the throttle
		case <-c.ctx.Done():
			return done, c.ctx.Err()
		}
	}
	return done, nil
}

func (s *rangeSite) served() (int64, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent, append([]string(nil), s.ranges...)
}

// waitFor waits for a request's number on ch, failing the test after d.
func waitFor(t *testing.T, ch <-chan int, want int, d time.Duration, what string) {
	t.Helper()
	select {
	case n := <-ch:
		if n != want {
			t.Fatalf("%s: request %d, want request %d", what, n, want)
		}
	case <-time.After(d):
		t.Fatalf("%s: request %d never did", what, want)
	}
}

// waitCheckpointBytes polls the server's view of the URL's activity until
// its last heartbeat says the kept part holds want bytes.
func (c *cluster) waitCheckpointBytes(run client.WorkflowRun, want int64) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var cp activities.URLCheckpoint
	for time.Now().Before(deadline) {
		d, err := c.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err == nil {
			for _, pa := range d.GetPendingActivities() {
				if pa.GetHeartbeatDetails() != nil && converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &cp) == nil && cp.Resume.Bytes == want {
					return
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view of the heartbeat
	}
	t.Fatalf("the server never recorded a checkpoint of %d bytes (last: %+v)", want, cp)
}

// TestRangeResumeSurvivesServerRestart fetches a large body over three
// attempts: the first is cut off by attempt_timeout, the second (a Range
// resume) by a Temporal server killed mid-body and kept down until the
// attempt's heartbeat gives up; the server then restarts on the same
// SQLite file. The third attempt must resume from the second's checkpoint:
// the site sends the body about once, not again from byte zero.
func TestRangeResumeSurvivesServerRestart(t *testing.T) {
	const size = 6 << 20
	const first, second = 2 << 20, 2 << 20
	site := newRangeSite(t, size, first, second)
	c := newCluster(t)
	// attempt_timeout outlasts attempt 2's give-up: its heartbeats are
	// sent every 8 s at most (0.8 of the 10 s heartbeat timeout), and one
	// that cannot reach the server is retried for 8 s before the attempt
	// is canceled, so at most about 17 s after attempt 2 starts.
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: []string{site.URL + "/big"}, AttemptTimeout: "25s", MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Attempt 1 stalls after its first bytes until attempt_timeout cuts it off.
	waitFor(t, site.cut, 1, time.Minute, "sending the first part")
	waitFor(t, site.gone, 1, time.Minute, "attempt 1 timing out")
	// Attempt 2 resumes, gets more, and stalls; once the server has its
	// checkpoint, the server dies, and stays down until attempt 2 gives up.
	waitFor(t, site.cut, 2, time.Minute, "sending the second part")
	c.waitCheckpointBytes(run, first+second)
	c.server.kill()
	killed := time.Now()
	waitFor(t, site.gone, 2, time.Minute, "attempt 2 giving up while the server is down")
	t.Logf("attempt 2 gave up %s after the server was killed", time.Since(killed).Round(100*time.Millisecond))
	c.server.start() // same SQLite file, same ports
	c.waitServer("")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	sent, ranges := site.served()
	t.Logf("body %d bytes; the site sent %d bytes (%.2fx) in %d requests %q", size, sent, float64(sent)/size, len(ranges), ranges)
	sum := sha256.Sum256(site.body)
	if len(out.Results) != 1 || out.Results[0].Outcome != workflows.OutcomeOK || out.Results[0].SHA256 != hex.EncodeToString(sum[:]) || out.Results[0].Size != size {
		t.Fatalf("got %+v, want the whole body ok with its sha256", out.Results)
	}
	if r := out.Results[0]; r.Attempts != 3 {
		t.Errorf("%d attempts, want 3 (a timeout, a server restart, the rest)", r.Attempts)
	}
	want := []string{"", fmt.Sprintf("bytes=%d-", first), fmt.Sprintf("bytes=%d-", first+second)}
	if fmt.Sprint(ranges) != fmt.Sprint(want) {
		t.Errorf("the site was asked for %q, want %q: each attempt on from the last one's checkpoint", ranges, want)
	}
	if sent > size+size/8 {
		t.Errorf("the site sent %d bytes for a %d-byte body: attempt 3 started over", sent, size)
	}
	if left := leftBlobs(c.blobDir); len(left) > 0 {
		t.Errorf("%d blobs left behind, e.g. %s", len(left), left[0])
	}
}
