package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// watchStderr runs the starter with args against the server at addr and
// sends each line it writes on stderr (not a terminal) to lines, which
// closes when the starter has ended; exited then holds its status.
func watchStderr(t *testing.T, addr string, args ...string) (lines <-chan string, exited <-chan int, cmd *exec.Cmd) {
	t.Helper()
	return watchStderrEnv(t, addr, nil, args...)
}

// watchStderrEnv is watchStderr with env added to the starter's
// environment.
func watchStderrEnv(t *testing.T, addr string, env []string, args ...string) (lines <-chan string, exited <-chan int, cmd *exec.Cmd) {
	t.Helper()
	cmd = exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+addr, "TEMPORAL_NAMESPACE=default")
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out, code := make(chan string, 1000), make(chan int, 1)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			out <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stderr)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			code <- ee.ExitCode()
		} else {
			code <- 0
		}
	}()
	return out, code, cmd
}

// waitForLine reads lines until one has every part of want, and fails the
// test when none does within limit. It returns the lines read.
func waitForLine(t *testing.T, lines <-chan string, limit time.Duration, want ...string) (seen []string, found string) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the starter ended without a line with %q; it said:\n%s", want, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			all := true
			for _, w := range want {
				all = all && strings.Contains(l, w)
			}
			if all {
				return seen, l
			}
		case <-deadline:
			t.Fatalf("no line with %q within %s; the starter said:\n%s", want, limit, strings.Join(seen, "\n"))
		}
	}
}

// A CPU worker on another blob store than the fetch worker refuses every
// chunk: the starter says so while it waits, with the role, the activity,
// the attempt and the worker's own words, and no SDK notes.
func TestARetriedFailureIsShownWhileWaiting(t *testing.T) {
	const queue, cpuQueue = "attempts-fetch", "attempts-cpu"
	fetch, err := testStack.StartWorkers(workers.Config{Role: workers.RoleFetch, TaskQueue: queue, CPUTaskQueue: cpuQueue})
	if err != nil {
		t.Fatal(err)
	}
	defer fetch.Stop()
	elsewhere := t.TempDir()
	other, err := blobstore.NewDir(elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := testStack.StartWorkers(workers.Config{Role: workers.RoleCPU, TaskQueue: queue, CPUTaskQueue: cpuQueue, Store: other, StoreLocation: elsewhere})
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Stop()

	id := fmt.Sprint("attempts-", time.Now().UnixNano())
	args := []string{"--id", id, "--task-queue", queue, "--cpu-task-queue", cpuQueue}
	for i := range 10 {
		args = append(args, fmt.Sprintf("%s/attempts/%d", site.URL, i))
	}
	lines, exited, cmd := watchStderr(t, hostPort, args...)
	defer func() {
		_ = testStack.Client.CancelWorkflow(context.Background(), id, "")
		_ = cmd.Process.Signal(os.Interrupt)
		<-exited
	}()
	seen, line := waitForLine(t, lines, 90*time.Second, "starter: cpu HashChunk attempt ", "failed: ", "is not the one the chunk's bodies were fetched into", elsewhere)
	t.Logf("said: %s", line)
	var attempt int
	if _, err := fmt.Sscanf(line, "starter: cpu HashChunk attempt %d failed:", &attempt); err != nil || attempt < 3 {
		t.Errorf("the line does not name an attempt after the second retry: %q", line)
	}
	if strings.Contains(line, "(type:") || strings.Contains(line, "retryable") {
		t.Errorf("the line carries the SDK's notes: %q", line)
	}
	for _, l := range seen {
		if strings.Contains(l, "/10 ") && !strings.HasPrefix(l, "[") {
			t.Errorf("a bar line with something else on it: %q", l)
		}
	}
	// Off a terminal the failure is said once, not at every attempt.
	more := 0
	for _, l := range seen {
		if strings.Contains(l, "HashChunk") {
			more++
		}
	}
	if more != 1 {
		t.Errorf("the failure was said %d times before the wait ended, want once:\n%s", more, strings.Join(seen, "\n"))
	}
}

// The Temporal server goes away while the starter waits, and comes back:
// the starter says it is unreachable, then that it answers again, and
// prints the batch's result.
func TestTheStarterWaitsThroughAServerRestart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.sqlite")
	port := freeport.Run(t, 8)
	release := make(chan struct{})
	held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			_, _ = io.WriteString(w, "page "+r.URL.Path)
		case <-r.Context().Done():
		}
	}))
	defer held.Close()
	cfg := devstack.Config{DBFile: db, Port: port, Workers: workers.Config{StopTimeout: 100 * time.Millisecond}}
	stack, err := devstack.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stack.Stop() }()
	addr := stack.FrontendAddress()

	lines, exited, cmd := watchStderr(t, addr, "--attempt-timeout", "3s", "--initial-backoff", "100ms", "--blob-dir", stack.BlobDir(), held.URL+"/held")
	defer func() {
		_ = cmd.Process.Kill()
	}()
	waitForLine(t, lines, time.Minute, "0/1", "in flight 1")
	stack.Stop()
	_, line := waitForLine(t, lines, time.Minute, "starter: Temporal server at "+addr+" unreachable for ", "s, still waiting")
	t.Logf("said: %s", line)
	if stack, err = devstack.Start(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	close(release)
	waitForLine(t, lines, 2*time.Minute, "starter: Temporal server at "+addr+" answers again, after ")
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if code := <-exited; code != 0 {
		t.Errorf("exit %d after the restart, want 0; then it said:\n%s", code, strings.Join(rest, "\n"))
	}
}
