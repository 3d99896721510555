//go:build cluster

package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestS3ServerDownMidBody: the S3 server stops while a large body is
// being written to it (a part uploaded, the next one due), and comes back
// on its own data once the URL has failed an attempt for it. The URL ends
// ok with the body's hash, and nothing is left in the bucket: the upload
// the failed attempt could not abort is aborted with the batch's blobs.
func TestS3ServerDownMidBody(t *testing.T) {
	const size = 16 << 20
	part := blobstore.S3PartSize
	srv := s3test.Start(t)
	site := newPlannedSite(t, size, answer{version: 1})
	site.pace = 16 * time.Millisecond // about 4 MB/s
	c := newServer(t)
	c.onS3(srv)
	c.fetch.start()
	c.cpu.start()
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: []string{site.URL + "/big"}, AttemptTimeout: "2m", InitialBackoff: "1s", MaxAttempts: 10})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return site.sentBy(1) >= part+part/2 }, "the first attempt getting past a part")
	srv.Stop()
	t.Logf("stopped S3 with %d bytes of the body sent", site.sentBy(1))
	waitUntil(t, func() bool { return len(site.requests()) >= 2 }, "the URL trying again")
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("S3 is back; the site was asked for %q", site.requests())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	t.Logf("the site was asked for %q; result %+v", site.requests(), out.Results)
	sum := sha256.Sum256(site.bodies[1])
	if len(out.Results) != 1 || out.Results[0].Outcome != workflows.OutcomeOK || out.Results[0].SHA256 != hex.EncodeToString(sum[:]) || out.Results[0].Size != size {
		t.Fatalf("got %+v, want the whole body ok with its sha256", out.Results)
	}
	c.fetch.stop()
	if left := leftInBucket(t, srv); len(left) > 0 {
		t.Errorf("left in the bucket after the batch: %q", left)
	}
}

// TestS3WorkersKilledMidBatch is TestWorkersKilledMidBatch on S3: a
// batch of small, slow and large pages in chunks, its workers SIGKILLed
// twice. Every URL once, with its hash; nothing left in the bucket.
func TestS3WorkersKilledMidBatch(t *testing.T) {
	srv := s3test.Start(t)
	site, pages := batchSite(t)
	c := newServer(t)
	c.onS3(srv)
	c.fetch.start()
	c.cpu.start()
	run := startBatch(t, c, site.URL, pages)
	c.waitProgress(run, len(pages)/4)
	c.fetch.kill()
	c.cpu.kill()
	c.fetch.start()
	c.cpu.start()
	c.waitProgress(run, len(pages)/2)
	c.fetch.kill()
	c.fetch.start()
	c.check(run, pages, site.URL, true)
	c.fetch.stop()
	if left := leftInBucket(t, srv); len(left) > 0 {
		t.Errorf("left in the bucket after the batch: %q", left)
	}
}
