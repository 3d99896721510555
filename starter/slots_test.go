package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/internal/workers"
)

// A batch asking for more fetches at once than its polling fetch workers
// have slots: the starter says so once, naming the flag and the workers'
// total, and its progress line shows what runs against what was asked.
func TestWarnsWhenWorkersHaveFewerSlotsThanAsked(t *testing.T) {
	const queue = "three-fetch-slots"
	pools, err := testStack.StartWorkers(workers.Config{Role: workers.RoleFetch, TaskQueue: queue, FetchSlots: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Stop()
	id := "starter-test-few-slots"
	args := []string{"--id", id, "--task-queue", queue, "--max-in-flight", "10", "--attempt-timeout", "5m"}
	for range 12 {
		args = append(args, site.URL+"/slow")
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+hostPort)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = testStack.Client.CancelWorkflow(context.Background(), id, "")
	}()
	want := map[string]bool{
		`have 3 fetch slots in all, fewer than this batch's max_in_flight 10`: false,
		"--fetch-slots":  false,
		"in flight 3/10": false,
	}
	found := make(chan struct{})
	var lines []string
	go func() {
		defer close(found)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			all := true
			for s := range want {
				want[s] = want[s] || strings.Contains(sc.Text(), s)
				all = all && want[s]
			}
			if all {
				return
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-found
	}
	for s, ok := range want {
		if !ok {
			t.Errorf("the starter never said %q; it said:\n%s", s, strings.Join(lines, "\n"))
		}
	}
}

// Workers with the slots asked for: no warning.
func TestNoSlotWarningWhenWorkersSuffice(t *testing.T) {
	r := starter(t, "", nil, "--max-in-flight", "5000", site.URL+"/a", site.URL+"/b")
	if r.code != 0 || strings.Contains(r.stderr, "fetch slots") {
		t.Errorf("exit %d, stderr %q: want success without a word on fetch slots", r.code, r.stderr)
	}
}
