package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// urlList writes n URLs of the test site, tagged, to a file.
func urlList(t *testing.T, tag string, n int) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%s/%s/%d\n", site.URL, tag, i)
	}
	p := filepath.Join(t.TempDir(), tag+".txt")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// inputsOf lists the files under the workers' inputs/ whose name starts
// with prefix.
func inputsOf(t *testing.T, prefix string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(workersBlobDir, "inputs", prefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// waitOK waits for workflow id to complete and checks every URL is ok.
func waitOK(t *testing.T, id string, n int) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out workflows.Output
	if err := c.GetWorkflow(ctx, id, "").Get(ctx, &out); err != nil {
		t.Fatalf("batch %s: %v", id, err)
	}
	if out.OK != n || out.Total != n {
		t.Errorf("batch %s: %d of %d ok, want %d", id, out.OK, out.Total, n)
	}
}

// TestCtrlCLeavesTheBatchItsInputs: the starter interrupted while no
// worker polls (the list of 1,500 URLs and the --previous file not yet
// staged) exits 130 saying the batch goes on, and it does: once a worker
// comes, every URL is fetched. The batch removes both files when it ends.
func TestCtrlCLeavesTheBatchItsInputs(t *testing.T) {
	queue := fmt.Sprintf("ctrl-c-%d", time.Now().UnixNano())
	id := queue + "-batch"
	prev := filepath.Join(t.TempDir(), "previous.jsonl")
	if err := os.WriteFile(prev, []byte(`{"url":"`+site.URL+`/other","outcome":"ok"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "--task-queue", queue, "--id", id, "--blob-dir", workersBlobDir, "--previous", prev, "--file", urlList(t, "c", 1500))
	cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+hostPort)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "batch workflow_id=") {
				close(started)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-started:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the starter did not start the batch within a minute")
	}
	_ = cmd.Process.Signal(os.Interrupt)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != exitInterrupted {
		t.Fatalf("after Ctrl-C: %v, want exit %d", err, exitInterrupted)
	}
	if files := inputsOf(t, id+"-"); len(files) != 2 {
		t.Fatalf("after Ctrl-C, the batch's input files: %v, want its list and its previous file", files)
	}
	if _, err := testStack.StartWorkers(workers.Config{Role: workers.RoleFetch, TaskQueue: queue}); err != nil {
		t.Fatal(err)
	}
	waitOK(t, id, 1500)
	if files := inputsOf(t, id+"-"); len(files) != 0 {
		t.Errorf("the batch ended and left its input files: %v", files)
	}
}

// TestUploadsNeverShareAKey: two starters with one --id upload each
// list under a key of its own, so neither overwrites the other's before
// the batch reads it. The second attaches to the first's batch, which
// reads its own list, and removes the one it wrote.
func TestUploadsNeverShareAKey(t *testing.T) {
	id := fmt.Sprint("same-id-", time.Now().UnixNano())
	var inputs []workflows.Input
	store := tempStore(t)
	for _, tag := range []string{"a", "b"} {
		var o options
		for i := 0; i <= workflows.InlineLimit; i++ {
			o.input.URLs = append(o.input.URLs, fmt.Sprintf("http://127.0.0.1/%s/%d", tag, i))
		}
		in := startHeld(t, o, id, store)
		inputs = append(inputs, in)
		if !in.RemoveInputs || in.URLsFile == "" || in.URLs != nil {
			t.Fatalf("input after the upload: remove_inputs %v, urls_file %q, %d urls", in.RemoveInputs, in.URLsFile, len(in.URLs))
		}
	}
	if inputs[1].URLsFile != inputs[0].URLsFile {
		t.Fatalf("the second start's batch reads %s, the first's %s: want one batch", inputs[1].URLsFile, inputs[0].URLsFile)
	}
	b, err := os.ReadFile(filepath.Join(store.Root, inputs[0].URLsFile))
	if err != nil || !strings.HasPrefix(string(b), "http://127.0.0.1/a/0\n") {
		t.Errorf("%s holds %.40q (%v), want list a", inputs[0].URLsFile, b, err)
	}
	if left, _ := filepath.Glob(filepath.Join(store.Root, "inputs", id+"-*")); len(left) != 1 {
		t.Errorf("input files %v, want the batch's list alone", left)
	}
}

// TestScheduleDeleteLeavesARunItsList: a schedule of 1,200 URLs is
// deleted while its run waits for a worker (the list not yet staged): the
// run still fetches every URL, and removes the list when it ends.
func TestScheduleDeleteLeavesARunItsList(t *testing.T) {
	queue := fmt.Sprintf("sched-del-%d", time.Now().UnixNano())
	id := queue
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "24h", "--paused", "--task-queue", queue, "--blob-dir", workersBlobDir, "--file", urlList(t, "s", 1200)); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	list := inputsOf(t, "schedules/"+id+"-")
	if len(list) != 1 {
		t.Fatalf("the schedule's list: %v", list)
	}
	if r := starter(t, "", nil, "schedule", "trigger", id); r.code != 0 {
		t.Fatalf("trigger: exit %d %s", r.code, r.stderr)
	}
	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var run string
	for deadline := time.Now().Add(time.Minute); run == ""; time.Sleep(100 * time.Millisecond) { // polling the schedule's own record
		if time.Now().After(deadline) {
			t.Fatal("no run started within a minute")
		}
		d, err := c.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Info.RunningWorkflows) > 0 {
			run = d.Info.RunningWorkflows[0].WorkflowID
		}
	}
	r := starter(t, "", nil, "schedule", "delete", "--blob-dir", workersBlobDir, id)
	if r.code != 0 || !strings.Contains(r.stdout, "stays until run "+run+" ends") {
		t.Fatalf("delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(list[0]); err != nil {
		t.Fatalf("delete removed the list from under its run: %v", err)
	}
	if _, err := testStack.StartWorkers(workers.Config{Role: workers.RoleFetch, TaskQueue: queue}); err != nil {
		t.Fatal(err)
	}
	waitOK(t, run, 1200)
	if _, err := os.Stat(list[0]); !os.IsNotExist(err) {
		t.Errorf("the run ended and left the deleted schedule's list: %v", err)
	}
}

// TestScheduleDeleteWithCodecKeys: with BATCHFETCH_CODEC_KEYS set, the
// schedule's action is encrypted; delete reads it with the same
// converter and removes the list.
func TestScheduleDeleteWithCodecKeys(t *testing.T) {
	id := fmt.Sprintf("sched-codec-%d", time.Now().UnixNano())
	env := []string{"BATCHFETCH_CODEC_KEYS=k1:" + strings.Repeat("A", 43) + "="}
	if r := starter(t, "", env, "schedule", "create", "--id", id, "--every", "24h", "--paused", "--blob-dir", workersBlobDir, "--file", urlList(t, "k", 1001)); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	list := inputsOf(t, "schedules/"+id+"-")
	if len(list) != 1 {
		t.Fatalf("the schedule's list: %v", list)
	}
	if r := starter(t, "", env, "schedule", "delete", "--blob-dir", workersBlobDir, id); r.code != 0 {
		t.Fatalf("delete: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(list[0]); !os.IsNotExist(err) {
		t.Errorf("delete left the list of an encrypted schedule: %v", err)
	}
}

// TestScheduleDeleteOnAnotherStoreDeletesNothing: delete with a
// --blob-dir that does not hold the schedule's list says so and leaves
// the schedule, running as it was, so that nothing is left unnamed.
func TestScheduleDeleteOnAnotherStoreDeletesNothing(t *testing.T) {
	id := fmt.Sprintf("sched-store-%d", time.Now().UnixNano())
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "24h", "--blob-dir", workersBlobDir, "--file", urlList(t, "o", 1001)); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	defer starter(t, "", nil, "schedule", "delete", "--blob-dir", workersBlobDir, id)
	r := starter(t, "", nil, "schedule", "delete", "--blob-dir", t.TempDir(), id)
	if r.code != exitUsage || !strings.Contains(r.stderr, "nothing was deleted") {
		t.Fatalf("delete on another store: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if d := starter(t, "", nil, "schedule", "describe", id); d.code != 0 || strings.Contains(d.stdout, "being deleted") {
		t.Errorf("after the refused delete: exit %d\n%s", d.code, d.stdout)
	}
}
