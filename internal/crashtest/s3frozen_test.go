//go:build cluster

package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestS3FrozenWorkerMidBodyChangesNothing: a fetch worker frozen
// (SIGSTOP) mid-way through a large body on S3, its parts uploaded and
// its multipart upload open, past its heartbeat timeout. The next attempt,
// on another worker, completes that upload from its parts, resumes from
// them and goes on; then the frozen worker wakes (SIGCONT) and goes on
// too, with its upload gone. The result is the body's, and once every
// worker has stopped nothing is left in the bucket: no object under
// batches/, no unfinished upload.
func TestS3FrozenWorkerMidBodyChangesNothing(t *testing.T) {
	const size = 24 << 20
	part := blobstore.S3PartSize
	srv := s3test.Start(t)
	site := newPlannedSite(t, size, answer{version: 1})
	site.pace = 16 * time.Millisecond // about 4 MB/s
	c := newServer(t)
	c.onS3(srv)
	other := &proc{t: t, name: "worker", args: c.fetch.args, env: append(append([]string{}, c.fetch.env...), "TMPDIR="+t.TempDir())}
	t.Cleanup(func() {
		signal(c.fetch, syscall.SIGCONT)
		other.stop()
		if t.Failed() {
			t.Logf("the other fetch worker:\n%s", tail(other.out))
		}
	})
	c.fetch.start()
	c.cpu.start()
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: []string{site.URL + "/big"}, AttemptTimeout: "5m", InitialBackoff: "100ms", MaxAttempts: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Past two parts (the worker may lag the site by what the sockets
	// hold): frozen.
	waitUntil(t, func() bool { return site.sentBy(1) >= 2*part+part/4 }, "the first attempt getting past two parts")
	signal(c.fetch, syscall.SIGSTOP)
	t.Logf("froze fetch worker %d with %d bytes of the body sent", c.fetch.cmd.Process.Pid, site.sentBy(1))
	other.start()
	waitUntil(t, func() bool { return site.sentBy(2) >= 1<<20 }, "the retry on the other worker getting under way")
	signal(c.fetch, syscall.SIGCONT)
	t.Logf("thawed it with the retry %d bytes in (asked for %q)", site.sentBy(2), site.requests())

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		t.Fatalf("batch failed: %v", err)
	}
	sum := sha256.Sum256(site.bodies[1])
	if len(out.Results) != 1 || out.Results[0].Outcome != workflows.OutcomeOK || out.Results[0].SHA256 != hex.EncodeToString(sum[:]) || out.Results[0].Size != size {
		t.Fatalf("got %+v, want the whole body ok with its sha256", out.Results)
	}
	ranges := site.requests()
	t.Logf("the site was asked for %q", ranges)
	if len(ranges) < 2 || !strings.HasPrefix(ranges[1], "bytes=") {
		t.Errorf("the site was asked for %q: want the retry to resume from the frozen attempt's parts", ranges)
	} else if from, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(ranges[1], "bytes="), "-"), 10, 64); err != nil || from < part || from%part != 0 {
		t.Errorf("the retry asked for %q, want the rest after the frozen attempt's uploaded parts (a multiple of %d)", ranges[1], part)
	}
	// Every worker stopped, the woken one too, before looking.
	c.fetch.stop()
	other.stop()
	if left := leftInBucket(t, srv); len(left) > 0 {
		t.Errorf("left in the bucket after the batch: %q", left)
	}
}

// waitUntil polls cond (a site's counters) for up to two minutes.
func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(20 * time.Millisecond) // polling the site's counters
	}
}
