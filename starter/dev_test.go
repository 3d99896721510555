package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/freeport"
)

// Dev mode says where its database and blobs live, and the exact commands
// that attach a fetch and a CPU worker to it (a worker on another blob
// store would be refused the chunks; a fetch worker without --allow the
// demo site).
func TestDevModeSaysHowToAttachAWorker(t *testing.T) {
	dir := t.TempDir()
	r := starter(t, "", nil, "--dev", "--dev-db", filepath.Join(dir, "dev.sqlite"), "--dev-port", "0", "--dev-ui-port", "0", "--quiet")
	blobs := filepath.Join(dir, "blobs")
	for _, want := range []string{
		"database " + filepath.Join(dir, "dev.sqlite") + ", blobs " + blobs + " (store identity ",
		"built-in fetch and CPU workers: fetch from public addresses and 127.0.0.1",
		"attach a fetch worker: TEMPORAL_ADDRESS=127.0.0.1:",
		"go run ./worker --role fetch --allow 127.0.0.1 --task-queue batchfetch --cpu-task-queue batchfetch-cpu --blob-dir " + blobs + " --build-id ",
		"attach a CPU worker: TEMPORAL_ADDRESS=127.0.0.1:",
		"go run ./worker --role cpu --task-queue batchfetch --cpu-task-queue batchfetch-cpu --blob-dir " + blobs + " --build-id ",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

// With --dev-workers=false the dev stack runs no worker: a batch waits,
// nothing fetched, until the workers its banner says how to attach come;
// those commands, typed as printed, run it to the end. Each worker logs
// its allow list and its store.
func TestDevWithoutWorkersWaitsForAttachedOnes(t *testing.T) {
	began := time.Now()
	workerBin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", workerBin, "../worker").CombinedOutput(); err != nil {
		t.Fatalf("building the worker: %v\n%s", err, out)
	}
	t.Logf("%v: worker built", time.Since(began))
	var fetched atomic.Int64
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		_, _ = io.WriteString(w, "page "+r.URL.Path)
	}))
	defer pages.Close()

	dir := t.TempDir()
	cmd := exec.Command(binary, "--dev", "--dev-workers=false", "--dev-db", filepath.Join(dir, "dev.sqlite"),
		"--dev-port", fmt.Sprint(freeport.Run(t, 8)), "--dev-ui-port", "0", "--quiet", pages.URL+"/a", pages.URL+"/b")
	cmd.Env = os.Environ()
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // ended below, unless the test failed
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	attach := map[string]string{}
	var banner, workflowID string
	for workflowID == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the starter ended before starting a batch:\n%s", banner)
			}
			banner += l + "\n"
			for _, role := range []string{"fetch", "CPU"} {
				if cmdline, ok := strings.CutPrefix(l, "attach a "+role+" worker: "); ok {
					attach[role] = cmdline
				}
			}
			if rest, ok := strings.CutPrefix(l, "batch workflow_id="); ok {
				workflowID, _, _ = strings.Cut(rest, " ")
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("no batch started within 2 minutes:\n%s", banner)
		}
	}
	t.Logf("%v: batch %s started", time.Since(began), workflowID)
	if !strings.Contains(banner, "no built-in workers (--dev-workers=false)") || len(attach) != 2 {
		t.Fatalf("the banner does not say there are no workers, or lacks an attach line:\n%s", banner)
	}
	address, _, _ := strings.Cut(strings.TrimPrefix(attach["fetch"], "TEMPORAL_ADDRESS="), " ")
	c, err := client.Dial(client.Options{HostPort: address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The batch is there, and nobody serves it.
	d, err := c.DescribeWorkflowExecution(context.Background(), workflowID, "")
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("batch %s: %v, %v; want running", workflowID, d.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	for _, q := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
		tq, err := c.DescribeTaskQueue(context.Background(), "batchfetch", q)
		if err != nil || len(tq.GetPollers()) != 0 {
			t.Fatalf("task queue batchfetch (%v): pollers %v (%v), want none", q, tq.GetPollers(), err)
		}
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("%d pages fetched with no worker", n)
	}

	// The attach lines, typed as printed (in a shell, this worker binary
	// for `go run ./worker`).
	logs := map[string]*bytes.Buffer{}
	var attached []*exec.Cmd
	stopWorkers := func() { // before their logs are read
		for _, w := range attached {
			_ = w.Process.Signal(syscall.SIGTERM)
			_ = w.Wait()
		}
		attached = nil
	}
	defer stopWorkers()
	for role, line := range attach {
		env, rest, _ := strings.Cut(strings.Replace(line, "go run ./worker", workerBin, 1), " ")
		w := exec.Command("sh", "-c", "export "+env+"; exec "+rest)
		logs[role] = &bytes.Buffer{}
		w.Stdout, w.Stderr = logs[role], logs[role]
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		attached = append(attached, w)
	}
	done := make(chan error, 1)
	go func() {
		for range lines { // drain
		}
		done <- cmd.Wait()
	}()
	t.Logf("%v: workers attached", time.Since(began))
	var waitErr error
	select {
	case waitErr = <-done:
	case <-time.After(2 * time.Minute):
		waitErr = errors.New("the batch did not end within 2 minutes of attaching the workers")
	}
	t.Logf("%v: batch ended", time.Since(began))
	stopWorkers()
	if waitErr != nil {
		t.Fatalf("starter: %v\nstdout: %s\nbanner:\n%s\nworkers: %s\n%s", waitErr, stdout.String(), banner, logs["fetch"], logs["CPU"])
	}
	if !strings.Contains(stdout.String(), "2 ok, 0 failed") || fetched.Load() < 2 {
		t.Errorf("stdout %q, %d pages fetched; want both ok", stdout.String(), fetched.Load())
	}
	storeID := banner[strings.Index(banner, "(store identity ")+len("(store identity "):]
	storeID, _, _ = strings.Cut(storeID, ")")
	for role, want := range map[string]string{"fetch": "public addresses and 127.0.0.1", "CPU": "none (a CPU worker fetches nothing)"} {
		if log := logs[role].String(); !strings.Contains(log, want) || !strings.Contains(log, storeID) || !strings.Contains(log, filepath.Join(dir, "blobs")) {
			t.Errorf("the %s worker's log lacks its allow list %q, its store %s or identity %s:\n%s", role, want, filepath.Join(dir, "blobs"), storeID, log)
		}
	}
}
