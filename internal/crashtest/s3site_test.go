//go:build cluster

package crashtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// answer is how a plannedSite answers one request of its body.
type answer struct {
	version int   // which body (and ETag) it serves
	noRange bool  // a Range is ignored: 200, the whole body
	chunked bool  // no Content-Length (a Range is answered as usual)
	stall   int64 // send this many bytes, then hold until the client goes (0: no stall)
	cut     int64 // send this many bytes, then close the connection (0: no cut)
}

// plannedSite serves /small/N pages at once and one large body on any
// other path, answering request k (from 1) of it as plan[k-1] says and
// any later one as the plan's last. The large body goes out 64 KiB every
// pace (4 ms: about 16 MB/s), with Range and If-Range honoured but where
// the plan says otherwise.
type plannedSite struct {
	*httptest.Server
	bodies map[int][]byte
	plan   []answer
	pace   time.Duration

	mu      sync.Mutex
	ranges  []string
	sent    map[int]int64 // bytes sent, by request
	stalled chan int      // the number of a request that stalled
}

func newPlannedSite(t *testing.T, size int, plan ...answer) *plannedSite {
	s := &plannedSite{bodies: map[int][]byte{}, plan: plan, pace: 4 * time.Millisecond, sent: map[int]int64{}, stalled: make(chan int, 8)}
	for _, a := range plan {
		if s.bodies[a.version] == nil {
			s.bodies[a.version] = seeded(77, uint64(a.version), size)
		}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *plannedSite) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/small/") {
		_, _ = io.WriteString(w, "small page "+r.URL.Path)
		return
	}
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	n := len(s.ranges)
	s.mu.Unlock()
	a := s.plan[min(n, len(s.plan))-1]
	body := s.bodies[a.version]
	w.Header().Set("ETag", fmt.Sprintf(`"planned-v%d"`, a.version))
	pw := &plannedWriter{ResponseWriter: w, site: s, n: n, a: a, ctx: r.Context()}
	switch {
	case a.noRange || r.Header.Get("Range") == "":
		if !a.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		_, _ = pw.Write(body)
	default:
		http.ServeContent(pw, r, "", time.Time{}, bytes.NewReader(body))
	}
}

// sentBy is how many bytes request n (from 1) has had.
func (s *plannedSite) sentBy(n int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[n]
}

func (s *plannedSite) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// plannedWriter sends a body 64 KiB at a time, stalling or cutting it
// off as its answer says.
type plannedWriter struct {
	http.ResponseWriter
	site  *plannedSite
	n     int
	a     answer
	ctx   context.Context
	wrote int64
}

func (p *plannedWriter) Write(b []byte) (int, error) {
	done := 0
	for len(b) > 0 {
		k := int64(min(len(b), 64<<10))
		for _, limit := range []int64{p.a.stall, p.a.cut} {
			if limit > 0 && p.wrote < limit {
				k = min(k, limit-p.wrote)
			}
		}
		m, err := p.ResponseWriter.Write(b[:k])
		p.wrote += int64(m)
		done += m
		p.site.mu.Lock()
		p.site.sent[p.n] += int64(m)
		p.site.mu.Unlock()
		if err != nil {
			return done, err
		}
		b = b[m:]
		p.ResponseWriter.(http.Flusher).Flush()
		switch {
		case p.a.stall > 0 && p.wrote == p.a.stall:
			p.site.stalled <- p.n
			<-p.ctx.Done()
			return done, p.ctx.Err()
		case p.a.cut > 0 && p.wrote == p.a.cut:
			if c, _, err := p.ResponseWriter.(http.Hijacker).Hijack(); err == nil {
				c.Close() // the body ends short (a chunked one: no last chunk)
			}
			return done, http.ErrHijacked
		}
		select {
		case <-time.After(p.site.pace): // the site's pace
		case <-p.ctx.Done():
			return done, p.ctx.Err()
		}
	}
	return done, nil
}

// s3Surprise is a large body on S3 whose site does something unusual
// between attempts, or a batch stopped mid-body.
type s3Surprise struct {
	name string
	size int
	plan []answer
	// kill: the worker is SIGKILLed once a checkpoint names this many
	// bytes (0: attempt 1 ends by its timeout).
	kill int64
	// cancel: the batch is canceled once attempt 1 stalls.
	cancel bool
	want   int      // the version the result must be of
	ranges []string // what the site must be asked for
}

// TestS3SiteSurprises: a large body on S3 cut off mid-download while the
// site changes it, ignores the Range, cannot serve the rest (416), sends
// it chunked; a cut exactly at a part's end; a batch canceled mid-body.
// The result is one whole body the site sent (the one the test says), and
// nothing is left in the bucket after each batch: no object under
// batches/, no unfinished upload.
func TestS3SiteSurprises(t *testing.T) {
	part := blobstore.S3PartSize
	mid := 2*part + part/2
	srv := s3test.Start(t)
	c := newServer(t)
	c.onS3(srv)
	c.fetch.start()
	c.cpu.start()
	for _, sc := range []s3Surprise{
		{name: "the body changes", size: 20 << 20, plan: []answer{{version: 1, stall: mid}, {version: 2}}, want: 2,
			ranges: []string{"", fmt.Sprintf("bytes=%d-", mid)}},
		{name: "the range is ignored", size: 20 << 20, plan: []answer{{version: 1, stall: mid}, {version: 1, noRange: true}}, want: 1,
			ranges: []string{"", fmt.Sprintf("bytes=%d-", mid)}},
		{name: "chunked, killed", size: 20 << 20, plan: []answer{{version: 1, chunked: true, stall: mid}, {version: 1, chunked: true}}, kill: 2 * part, want: 1,
			ranges: []string{"", fmt.Sprintf("bytes=%d-", 2*part)}},
		{name: "chunked, every byte but the end", size: int(2 * part), plan: []answer{{version: 1, chunked: true, cut: 2 * part}, {version: 1, chunked: true}}, want: 1,
			ranges: []string{"", fmt.Sprintf("bytes=%d-", 2*part), ""}},
		{name: "killed at a part's end", size: 20 << 20, plan: []answer{{version: 1, stall: 2 * part}, {version: 1}}, kill: 2 * part, want: 1,
			ranges: []string{"", fmt.Sprintf("bytes=%d-", 2*part)}},
		{name: "killed a byte past a part", size: 20 << 20, plan: []answer{{version: 1, stall: part + 1}, {version: 1}}, kill: part, want: 1,
			ranges: []string{"", fmt.Sprintf("bytes=%d-", part)}},
		{name: "canceled", size: 20 << 20, plan: []answer{{version: 1, stall: mid}}, cancel: true},
	} {
		if !t.Run(sc.name, func(t *testing.T) { checkS3Surprise(t, c, srv, sc) }) {
			return
		}
	}
}

func checkS3Surprise(t *testing.T, c *cluster, srv *s3test.Server, sc s3Surprise) {
	site := newPlannedSite(t, sc.size, sc.plan...)
	timeout := "10s"
	if sc.kill > 0 || sc.cancel {
		timeout = "2m"
	}
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: []string{site.URL + "/big"}, AttemptTimeout: timeout, InitialBackoff: "100ms", MaxAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	if sc.plan[0].stall > 0 {
		waitFor(t, site.stalled, 1, time.Minute, "the first request stalling")
	}
	switch {
	case sc.kill > 0:
		c.waitCheckpointBytes(run, sc.kill)
		c.fetch.kill()
		c.fetch.start()
	case sc.cancel:
		if err := c.client.CancelWorkflow(context.Background(), run.GetID(), run.GetRunID()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	err = run.Get(ctx, &out)
	ranges := site.requests()
	t.Logf("the site was asked for %q", ranges)
	if sc.cancel {
		c.waitClosed(run)
	} else {
		if err != nil {
			t.Fatalf("batch failed: %v", err)
		}
		body := site.bodies[sc.want]
		sum := sha256.Sum256(body)
		if len(out.Results) != 1 || out.Results[0].Outcome != workflows.OutcomeOK || out.Results[0].SHA256 != hex.EncodeToString(sum[:]) || out.Results[0].Size != int64(len(body)) {
			t.Errorf("got %+v, want body version %d whole, sha256 %x", out.Results, sc.want, sum)
		}
		if fmt.Sprint(ranges) != fmt.Sprint(sc.ranges) {
			t.Errorf("the site was asked for %q, want %q", ranges, sc.ranges)
		}
	}
	if left := leftInBucket(t, srv); len(left) > 0 {
		t.Errorf("left in the bucket after the batch: %q", left)
	}
}

// waitClosed waits until the batch's run has closed (its cleanup done).
func (c *cluster) waitClosed(run client.WorkflowRun) {
	c.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		d, err := c.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view of the run
	}
	c.t.Fatal("the batch never closed")
}
