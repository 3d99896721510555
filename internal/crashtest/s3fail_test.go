//go:build cluster

package crashtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// fetchVia points the fetch worker at the S3 server through endpoint (a
// gate in front of it); the CPU worker keeps the direct address.
func (c *cluster) fetchVia(srv *s3test.Server, endpoint string) {
	for i, a := range c.fetch.args {
		if a == "--blob-url" {
			c.fetch.args[i+1] = srv.URL(s3test.Bucket, endpoint)
		}
	}
}

// leftInBucket lists what a finished batch should have removed from the
// bucket: objects under batches/ and unfinished multipart uploads.
func leftInBucket(t *testing.T, srv *s3test.Server) []string {
	t.Helper()
	var left []string
	for _, k := range srv.Keys(t, s3test.Bucket) {
		if strings.HasPrefix(k, "upload:") || strings.HasPrefix(k, blobstore.ScratchPrefix) {
			left = append(left, k)
		}
	}
	return left
}

// stallSite serves one large body with a strong ETag and Range support.
// Its first request sends a first part, says so (started) and waits for
// resume; then sends up to stall bytes, in writes of 100,000 bytes (no
// divisor of a part), and holds until the client goes away (gone). Later
// requests are served whole (or their range).
type stallSite struct {
	*httptest.Server
	body    []byte
	stall   int64
	started chan struct{}
	resume  chan struct{}
	gone    chan struct{} // closed when the first request's client goes away

	mu     sync.Mutex
	ranges []string
}

func newStallSite(t *testing.T, size int, stall int64) *stallSite {
	s := &stallSite{body: newRangeSite(t, size).body, stall: stall, started: make(chan struct{}), resume: make(chan struct{}), gone: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *stallSite) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	n := len(s.ranges)
	s.mu.Unlock()
	w.Header().Set("ETag", `"stall-site-v1"`)
	if n > 1 {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.body))
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(s.body)))
	defer close(s.gone)
	const first = 1 << 20
	_, _ = w.Write(s.body[:first])
	w.(http.Flusher).Flush()
	close(s.started)
	select {
	case <-s.resume:
	case <-r.Context().Done():
		return
	}
	for off := int64(first); off < s.stall; off += 100_000 {
		if _, err := w.Write(s.body[off:min(off+100_000, s.stall)]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
	<-r.Context().Done()
}

func (s *stallSite) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

// TestS3PartUploadCutOffNeverCorruptsTheBody: the attempt's timeout
// fires while its writer uploads a part (S3 slow or out of reach: here a
// gate in front of it holds the request). The attempt pauses, S3 is back,
// and the next attempt resumes from what the checkpoint names: the hash is
// the body's, never the body with a part's bytes replaced by later ones.
func TestS3PartUploadCutOffNeverCorruptsTheBody(t *testing.T) {
	const size = 12 << 20
	srv := s3test.Start(t)
	g := newGate(t, srv.Addr)
	site := newStallSite(t, size, blobstore.S3PartSize+1<<20)
	c := newServer(t)
	c.onS3(srv)
	c.fetchVia(srv, g.addr())
	c.fetch.start()
	c.cpu.start()
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: []string{site.URL + "/big"}, AttemptTimeout: "10s", InitialBackoff: "100ms", MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-site.started:
	case <-time.After(time.Minute):
		t.Fatal("the site was never asked for the body")
	}
	// S3 stops answering the fetch worker: the upload of the first part
	// waits until the attempt's timeout cancels it (the site sees its
	// client go). S3 answers again for the paused writer to put what it
	// holds.
	g.cut()
	close(site.resume)
	select {
	case <-site.gone:
	case <-time.After(time.Minute):
		t.Fatal("the first attempt never timed out")
	}
	g.lift()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	reqs := site.requests()
	t.Logf("the site was asked for %q", reqs)
	if len(reqs) != 2 || !strings.HasPrefix(reqs[1], "bytes=") {
		t.Errorf("the site was asked for %q, want the body, then the rest after what the first attempt kept", reqs)
	}
	sum := sha256.Sum256(site.body)
	if len(out.Results) != 1 || out.Results[0].Outcome != workflows.OutcomeOK || out.Results[0].SHA256 != hex.EncodeToString(sum[:]) || out.Results[0].Size != size {
		t.Fatalf("got %+v, want the whole body ok with its sha256 %x", out.Results, sum)
	}
	if left := leftInBucket(t, srv); len(left) > 0 {
		t.Errorf("left in the bucket after the batch: %q", left)
	}
}
