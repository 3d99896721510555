package batchfetch_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// smallDisk mounts a tmpfs of the given size for a test's blob store, or
// skips the test where mounting is not allowed (not root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs of %s (needs root): %v %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// peakUse samples the used bytes of dir's file system until stop.
func peakUse(dir string) (stop func() int64) {
	var peak atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var st syscall.Statfs_t
			if syscall.Statfs(dir, &st) == nil {
				peak.Store(max(peak.Load(), int64(st.Blocks-st.Bfree)*int64(st.Bsize)))
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { close(done); <-finished; return peak.Load() }
}

// A batch many times larger than its blob disk completes, every body
// right: bodies leave the disk once hashed, and a fetch that finds the
// disk full for a moment waits for room instead of failing its URL.
func TestASmallDiskHoldsALargerBatch(t *testing.T) {
	disk := smallDisk(t, "64m")
	store, err := blobstore.NewDir(disk)
	if err != nil {
		t.Fatal(err)
	}
	const queue, cpuQueue = "e2e-small-disk", "e2e-small-disk-cpu"
	pool, err := env.stack.StartWorkers(workers.Config{HTTP: local, TaskQueue: queue, CPUTaskQueue: cpuQueue, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	for _, tc := range []struct {
		name                    string
		urls, size, maxInFlight int
	}{
		{"40 bodies of 4 MiB, 4 at once", 40, 4 << 20, 4},
		{"150 bodies of 1 MiB in chunks, 8 at once", 150, 1 << 20, 8},
		// Staged: chunks of 500 URLs, each 47 MiB, two of them fetching
		// at once on the 64 MiB disk.
		{"1,100 bodies of 96 KiB, staged, 20 at once", 1100, 96 << 10, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSite(t, nil)
			s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b := sizedBody(r.URL.Path, tc.size)
				w.Header().Set("Content-Length", strconv.Itoa(len(b)))
				_, _ = w.Write(b)
			})
			urls := make([]string, tc.urls)
			for i := range urls {
				urls[i] = fmt.Sprintf("%s/body/%d", s.URL, i)
			}
			stop := peakUse(disk)
			run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
				workflows.Input{URLs: urls, MaxInFlight: tc.maxInFlight, CPUTaskQueue: cpuQueue})
			if err != nil {
				t.Fatal(err)
			}
			out, err := result(t, run)
			peak := stop()
			if err != nil {
				describePending(t, run)
				t.Fatal(err)
			}
			t.Logf("%d bytes fetched through a 64 MiB disk, peak use %d bytes", tc.urls*tc.size, peak)
			for i, r := range out.Results {
				sum := sha256.Sum256(sizedBody(fmt.Sprintf("/body/%d", i), tc.size))
				if r.Outcome != workflows.OutcomeOK || r.SHA256 != hex.EncodeToString(sum[:]) || r.Attempts != 1 {
					t.Errorf("URL %d: %+v, want ok with its sha256 after one attempt", i, r)
				}
			}
			if left := filesUnder(t, filepath.Join(disk, "batches")); len(left) > 0 {
				t.Errorf("left in the blob store: %v", left)
			}
		})
	}
}

// sizedBody is the body of path: n bytes drawn from a seed of the path.
func sizedBody(path string, n int) []byte {
	var seed [32]byte
	copy(seed[:], path)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(seed).Read(b)
	return b
}

func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	return out
}

// describePending logs what a stuck batch waits for: its pending
// activities, their last heartbeat and failure.
func describePending(t *testing.T, run client.WorkflowRun) {
	d, err := env.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
	if err != nil {
		t.Logf("describe: %v", err)
		return
	}
	for _, p := range d.GetPendingActivities() {
		t.Logf("pending %s %s attempt %d state %v heartbeat %s failure %v", p.GetActivityId(), p.GetActivityType().GetName(), p.GetAttempt(), p.GetState(),
			p.GetHeartbeatDetails().String(), p.GetLastFailure().GetMessage())
	}
}
