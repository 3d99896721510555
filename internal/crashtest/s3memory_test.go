//go:build cluster

package crashtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/workflows"
)

// TestS3ManyLargeBodiesMemory measures the fetch worker's peak resident
// memory while it downloads many large bodies at once, on a directory
// and on S3 (where each body's writer holds up to a part in memory). A
// measurement, not a check: set BATCHFETCH_S3_MEMORY=N to run it with N
// bodies of 20 MiB at once.
func TestS3ManyLargeBodiesMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BATCHFETCH_S3_MEMORY"))
	if n <= 0 {
		t.Skip("set BATCHFETCH_S3_MEMORY=N to measure with N bodies at once")
	}
	const size = 20 << 20
	site := newPlannedSite(t, size, answer{version: 1})
	var active, peak atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		site.serve(w, r)
	}))
	t.Cleanup(front.Close)
	var urls []string
	for i := range n {
		urls = append(urls, fmt.Sprintf("%s/big/%d", front.URL, i))
	}
	for _, store := range []string{"dir", "s3"} {
		t.Run(store, func(t *testing.T) {
			peak.Store(0)
			c := newServer(t)
			if store == "s3" {
				c.onS3(s3test.Start(t))
			}
			c.fetch.start()
			c.cpu.start()
			start := time.Now()
			run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
				workflows.WorkflowName, workflows.Input{URLs: urls, MaxInFlight: n, AttemptTimeout: "10m"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
			defer cancel()
			var out workflows.Output
			if err := run.Get(ctx, &out); err != nil || out.OK != n {
				t.Fatalf("%v; %d of %d ok", err, out.OK, n)
			}
			hwm := vmHWM(t, c.fetch.cmd.Process.Pid)
			t.Logf("%s: %d bodies of %d MiB, %d at once at most: fetch worker peak resident memory %d MiB (%s)",
				store, n, size>>20, peak.Load(), hwm>>20, time.Since(start).Round(time.Second))
		})
	}
}
