//go:build cluster

package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// onS3 points the cluster's workers at a real S3 server instead of a
// directory: each its own empty TMPDIR, so they share nothing but the
// Temporal server and the bucket.
func (c *cluster) onS3(srv *s3test.Server) string {
	url := srv.URL(s3test.Bucket, "")
	for _, p := range []*proc{c.fetch, c.cpu} {
		for i, a := range p.args {
			if a == "--blob-dir" {
				p.args[i], p.args[i+1] = "--blob-url", url
			}
		}
		p.env = append(p.env, srv.Env()...)
		p.env = append(p.env, "TMPDIR="+c.t.TempDir())
	}
	return url
}

// s3Cut is one scenario of a large body cut off mid-download with its
// bytes on S3: how the attempt is cut off, and where the next one must
// resume from.
type s3Cut struct {
	name   string
	stall  int64 // bytes the site sends before it stalls attempt 1
	resume int64 // the Range attempt 2 must ask from
	// timeout is the batch's attempt_timeout: what cuts attempt 1 off,
	// or longer than the cut takes.
	timeout string
	cut     func(c *cluster, run client.WorkflowRun)
}

// TestS3LargeBodyCutOffResumes: a 24 MiB body on an object store resumes
// from what the store kept, as on a directory. Cut off by attempt_timeout,
// the attempt pauses, canceled, and still uploads its last part: the next
// asks for the rest after every byte it got. Its worker SIGKILLed, the
// upload is left unfinished: the next attempt asks for the rest after the
// parts the killed one had uploaded, which is what its last checkpoint
// named. The hash is the body's, and nothing is left in the bucket.
func TestS3LargeBodyCutOffResumes(t *testing.T) {
	part := blobstore.S3PartSize
	stall := 2*part + part/2 // mid-way through the third part
	for _, sc := range []s3Cut{
		{name: "timeout", stall: stall, resume: stall, timeout: "10s", cut: func(*cluster, client.WorkflowRun) {}},
		{name: "kill", stall: stall, resume: 2 * part, timeout: "2m", cut: func(c *cluster, run client.WorkflowRun) {
			c.waitCheckpointBytes(run, 2*part) // what the uploaded parts hold
			c.fetch.kill()
			c.fetch.start()
		}},
	} {
		t.Run(sc.name, func(t *testing.T) { checkS3Cut(t, sc) })
	}
}

func checkS3Cut(t *testing.T, sc s3Cut) {
	const size = 24 << 20
	srv := s3test.Start(t)
	site := newRangeSite(t, size, sc.stall)
	c := newServer(t)
	c.onS3(srv)
	c.fetch.start()
	c.cpu.start()
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: []string{site.URL + "/big"}, AttemptTimeout: sc.timeout, MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, site.cut, 1, time.Minute, "sending the first part")
	sc.cut(c, run)
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
	want := []string{"", fmt.Sprintf("bytes=%d-", sc.resume)}
	if fmt.Sprint(ranges) != fmt.Sprint(want) {
		t.Errorf("the site was asked for %q, want %q: attempt 2 on from what the store kept", ranges, want)
	}
	if want := sc.stall + size - sc.resume; sent != want {
		t.Errorf("the site sent %d bytes, want %d: the stalled part and the rest from byte %d", sent, want, sc.resume)
	}
	var left []string
	for _, k := range srv.Keys(t, s3test.Bucket) {
		if strings.HasPrefix(k, "upload:") || strings.HasPrefix(k, blobstore.ScratchPrefix) {
			left = append(left, k)
		}
	}
	if len(left) > 0 {
		t.Errorf("left in the bucket after the batch: %q", left)
	}
}
