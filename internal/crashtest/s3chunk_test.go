//go:build cluster

package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestS3ChunkedBodySpillsAndResumes: in a chunk of a batch on S3 (its
// small bodies in a pack), a large body sent chunked (no length) starts
// in memory as a small one would, spills into a resumable blob of its own
// once it outgrows one, and is cut off mid-way: by the attempt's timeout
// (the chunk's next attempt of the URL resumes after every byte it got),
// or by a SIGKILL of its worker (the chunk's retry resumes after the
// parts its checkpoint named). Every URL ok with its hash, nothing left
// in the bucket.
func TestS3ChunkedBodySpillsAndResumes(t *testing.T) {
	part := blobstore.S3PartSize
	mid := 2*part + part/2
	srv := s3test.Start(t)
	c := newServer(t)
	c.onS3(srv)
	c.fetch.start()
	c.cpu.start()
	for _, sc := range []struct {
		name    string
		timeout string
		kill    bool
		resume  int64
	}{
		{name: "timeout", timeout: "10s", resume: mid},
		{name: "kill", timeout: "2m", kill: true, resume: 2 * part},
	} {
		t.Run(sc.name, func(t *testing.T) {
			const size = 20 << 20
			site := newPlannedSite(t, size, answer{version: 1, chunked: true, stall: mid}, answer{version: 1, chunked: true})
			var urls []string
			for i := range 100 {
				urls = append(urls, fmt.Sprintf("%s/small/%d", site.URL, i))
			}
			urls = append(urls, site.URL+"/big")
			run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
				workflows.WorkflowName, workflows.Input{URLs: urls, AttemptTimeout: sc.timeout, InitialBackoff: "100ms", MaxAttempts: 3})
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, site.stalled, 1, time.Minute, "the first request of /big stalling")
			if sc.kill {
				c.waitChunkCheckpointBytes(run, 2*part)
				c.fetch.kill()
				c.fetch.start()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var out workflows.Output
			if err := run.Get(ctx, &out); err != nil {
				t.Fatalf("batch failed: %v", err)
			}
			ranges := site.requests()
			t.Logf("/big was asked for %q", ranges)
			if out.OK != len(urls) {
				t.Errorf("%d of %d ok", out.OK, len(urls))
			}
			sum := sha256.Sum256(site.bodies[1])
			if big := out.Results[len(out.Results)-1]; big.SHA256 != hex.EncodeToString(sum[:]) || big.Size != size {
				t.Errorf("/big: %+v, want it whole, sha256 %x", big, sum)
			}
			if want := []string{"", fmt.Sprintf("bytes=%d-", sc.resume)}; fmt.Sprint(ranges) != fmt.Sprint(want) {
				t.Errorf("/big was asked for %q, want %q", ranges, want)
			}
			if left := leftInBucket(t, srv); len(left) > 0 {
				t.Errorf("left in the bucket after the batch: %q", left)
			}
		})
	}
}

// waitChunkCheckpointBytes polls the server's view of the batch's chunk
// activities until one's last heartbeat says a URL's kept part holds want
// bytes.
func (c *cluster) waitChunkCheckpointBytes(run client.WorkflowRun, want int64) {
	t := c.t
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d, err := c.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err == nil {
			for _, pa := range d.GetPendingActivities() {
				var cp activities.FetchCheckpoint
				if pa.GetHeartbeatDetails() == nil || converter.GetDefaultDataConverter().FromPayloads(pa.GetHeartbeatDetails(), &cp) != nil {
					continue
				}
				for _, r := range cp.Running {
					if r.Resume.Bytes == want {
						return
					}
				}
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view of the heartbeat
	}
	t.Fatalf("the server never recorded a chunk checkpoint of %d bytes", want)
}
