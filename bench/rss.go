package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// rss runs a worker process alone on its own task queues, has it fetch and
// hash one large body, and reads its peak resident memory.
func rss(c *config, st *stack, s *site) error {
	bin, err := st.binary("worker")
	if err != nil {
		return err
	}
	queue := "bench-rss"
	cmd := exec.Command(bin, "--allow", "127.0.0.1", "--task-queue", queue, "--cpu-task-queue", queue+"-cpu", "--blob-dir", filepath.Join(st.dir, "rss-blobs"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+st.FrontendAddress(), "TEMPORAL_NAMESPACE=default")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ctx := context.Background()
	urls := s.largeURLs(1, c.rssSize, "rss")
	start := time.Now()
	run, err := st.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, workflows.WorkflowName,
		workflows.Input{URLs: urls, CPUTaskQueue: queue + "-cpu", AttemptTimeout: "10m"})
	if err != nil {
		return err
	}
	var out workflows.Output
	if err := run.Get(ctx, &out); err != nil {
		return err
	}
	if out.OK != 1 {
		return fmt.Errorf("the large body failed: %+v", out.Results)
	}
	hwm, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return err
	}
	fmt.Printf("\n== rss: one worker process (fetch and CPU pools) fetches and hashes a %d MiB body in %v\n", c.rssSize>>20, time.Since(start).Round(time.Millisecond))
	fmt.Printf("peak resident memory (VmHWM)   %d MiB  (size %d bytes, sha256 %s…)\n", hwm>>20, out.Results[0].Size, out.Results[0].SHA256[:16])
	return nil
}

func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
