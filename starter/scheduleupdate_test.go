package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/codec"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// scheduledInput is the input the schedule's runs start with, as the
// server holds it.
func scheduledInput(t *testing.T, c client.Client, id string, dc converter.DataConverter) (workflows.Input, *client.ScheduleDescription) {
	t.Helper()
	d, err := c.ScheduleClient().GetHandle(context.Background(), id).Describe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	var in workflows.Input
	if err := dc.FromPayload(a.Args[0].(*commonpb.Payload), &in); err != nil {
		t.Fatal(err)
	}
	return in, d
}

// TestScheduleUpdateKeepsTheRest: update replaces the schedule's URLs
// and nothing else (mode, attempts, headers, incremental, its spec and
// pause); a bad line refuses it and changes nothing; with
// --skip-invalid, the bad lines are left out and reported.
func TestScheduleUpdateKeepsTheRest(t *testing.T) {
	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dc := converter.GetDefaultDataConverter()
	id := fmt.Sprintf("sched-update-%d", time.Now().UnixNano())
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "24h", "--paused", "--incremental", "--mode", "fail_fast",
		"--max-attempts", "5", "--header", "X-Team: fetchers", site.URL+"/old/1", site.URL+"/old/2"); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	defer starter(t, "", nil, "schedule", "delete", id)
	before, _ := scheduledInput(t, c, id, dc)

	file, _ := badLines(t)
	r := starter(t, "", nil, "schedule", "update", id, "--file", file)
	if r.code != exitUsage || !strings.Contains(r.stderr, "invalid input: "+file+" line 7:") {
		t.Errorf("update with a bad line: exit %d, want %d naming it\n%s", r.code, exitUsage, r.stderr)
	}
	if in, _ := scheduledInput(t, c, id, dc); !slices.Equal(in.URLs, before.URLs) {
		t.Errorf("a refused update changed the URLs: %v", in.URLs)
	}

	r = starter(t, "", nil, "schedule", "update", id, "--skip-invalid", "--file", file, site.URL+"/new/arg")
	if r.code != 0 || !strings.Contains(r.stdout, "schedule "+id+" updated: its runs fetch 4 URLs from now on (in the schedule)") {
		t.Fatalf("update --skip-invalid: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "skipped 7 invalid lines of "+file+":\n  line 2: ") {
		t.Errorf("update --skip-invalid did not report the skipped lines:\n%s", r.stderr)
	}
	in, d := scheduledInput(t, c, id, dc)
	want := []string{site.URL + "/new/arg", site.URL + "/good/1", site.URL + "/good/2", site.URL + "/good/3"}
	if !slices.Equal(in.URLs, want) || in.URLsFile != "" {
		t.Errorf("URLs after the update: %v %q, want %v", in.URLs, in.URLsFile, want)
	}
	if in.Mode != workflows.ModeFailFast || in.MaxAttempts != 5 || in.Incremental != id || in.Headers["X-Team"].Value != "fetchers" {
		t.Errorf("the update changed other fields: mode %q, max_attempts %d, incremental %q, headers %+v", in.Mode, in.MaxAttempts, in.Incremental, in.Headers)
	}
	a := d.Schedule.Action.(*client.ScheduleWorkflowAction)
	if !d.Schedule.State.Paused || d.Schedule.Spec.Intervals[0].Every != 24*time.Hour || a.StaticSummary != "4 URLs, scheduled by "+id || a.TaskQueue != workflows.TaskQueue {
		t.Errorf("after the update: paused %v, spec %+v, summary %q, queue %q", d.Schedule.State.Paused, d.Schedule.Spec, a.StaticSummary, a.TaskQueue)
	}

	if r := starter(t, "", nil, "schedule", "update", "no-such-schedule", site.URL+"/x"); r.code != exitNotFound {
		t.Errorf("update of no schedule: exit %d, want %d\n%s", r.code, exitNotFound, r.stderr)
	}
	if r := starter(t, "", nil, "schedule", "update", id); r.code != exitUsage || !strings.Contains(r.stderr, "no URLs") {
		t.Errorf("update with no URLs: exit %d\n%s", r.code, r.stderr)
	}
}

// TestScheduleUpdateLeavesARunItsList: a schedule of 1,200 URLs (kept in
// the blob store) is updated to 1,100 others while its run waits for a
// worker: the old list stays for that run, which fetches all 1,200 and
// removes it; the new list is kept in the store. Updated again to two
// URLs with no run going, the list of 1,100 goes at once, and the next
// run fetches the two.
func TestScheduleUpdateLeavesARunItsList(t *testing.T) {
	queue := fmt.Sprintf("sched-upd-%d", time.Now().UnixNano())
	id := queue
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "24h", "--paused", "--task-queue", queue, "--blob-dir", workersBlobDir, "--file", urlList(t, "u", 1200)); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	defer starter(t, "", nil, "schedule", "delete", "--blob-dir", workersBlobDir, id)
	old := inputsOf(t, "schedules/"+id+"-")
	if len(old) != 1 {
		t.Fatalf("the schedule's list: %v", old)
	}
	if r := starter(t, "", nil, "schedule", "trigger", id); r.code != 0 {
		t.Fatalf("trigger: exit %d %s", r.code, r.stderr)
	}
	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := scheduleRun(t, c, id, "")

	// Another store does not hold the list: refused, nothing changed,
	// nothing left in either store.
	elsewhere := t.TempDir()
	r := starter(t, "", nil, "schedule", "update", id, "--blob-dir", elsewhere, "--file", urlList(t, "v", 1100))
	if r.code != exitUsage || !strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("update on another store: exit %d\n%s", r.code, r.stderr)
	}
	if files, _ := filepath.Glob(filepath.Join(elsewhere, "inputs", "schedules", "*")); len(files) != 0 || len(inputsOf(t, "schedules/"+id+"-")) != 1 {
		t.Errorf("a refused update left lists: %v, %v", files, inputsOf(t, "schedules/"+id+"-"))
	}

	r = starter(t, "", nil, "schedule", "update", id, "--blob-dir", workersBlobDir, "--file", urlList(t, "v", 1100))
	if r.code != 0 || !strings.Contains(r.stdout, "updated: its runs fetch 1100 URLs from now on (kept in the blob store as inputs/schedules/"+id+"-") ||
		!strings.Contains(r.stdout, "the old URL list inputs/schedules/"+filepath.Base(old[0])+" stays until run "+run+" ends") {
		t.Fatalf("update: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	in, _ := scheduledInput(t, c, id, converter.GetDefaultDataConverter())
	lists := inputsOf(t, "schedules/"+id+"-")
	if len(lists) != 2 || in.URLsFile == "" || in.URLsFile == "inputs/schedules/"+filepath.Base(old[0]) || len(in.URLs) != 0 {
		t.Fatalf("after the update: lists %v, the schedule reads %q", lists, in.URLsFile)
	}
	b, err := os.ReadFile(filepath.Join(workersBlobDir, in.URLsFile))
	if err != nil || !strings.HasPrefix(string(b), site.URL+"/v/0\n") || strings.Count(string(b), "\n") != 1100 {
		t.Errorf("the new list %s: %.40q (%d lines), %v", in.URLsFile, b, strings.Count(string(b), "\n"), err)
	}
	if _, err := testStack.StartWorkers(workers.Config{Role: workers.RoleFetch, TaskQueue: queue}); err != nil {
		t.Fatal(err)
	}
	waitOK(t, run, 1200)
	if _, err := os.Stat(old[0]); !os.IsNotExist(err) {
		t.Errorf("the run ended and left the old list: %v", err)
	}

	r = starter(t, "", nil, "schedule", "update", id, "--blob-dir", workersBlobDir, site.URL+"/w/1", site.URL+"/w/2")
	if r.code != 0 || strings.Contains(r.stdout, "stays") || r.stderr != "" {
		t.Fatalf("update to two URLs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if lists := inputsOf(t, "schedules/"+id+"-"); len(lists) != 0 {
		t.Errorf("the list no run reads stays: %v", lists)
	}
	if r := starter(t, "", nil, "schedule", "trigger", id); r.code != 0 {
		t.Fatalf("trigger: exit %d %s", r.code, r.stderr)
	}
	waitOK(t, scheduleRun(t, c, id, run), 2)
}

// TestScheduleUpdateWithCodecKeys: with BATCHFETCH_CODEC_KEYS set, the
// schedule's action is encrypted: update reads it and writes it with the
// same keys, and the runs' input is still encrypted.
func TestScheduleUpdateWithCodecKeys(t *testing.T) {
	keys := "k1:" + strings.Repeat("A", 43) + "="
	t.Setenv("BATCHFETCH_CODEC_KEYS", keys)
	cd, err := codec.FromEnv()
	if err != nil || cd == nil {
		t.Fatalf("codec from the environment: %v", err)
	}
	id := fmt.Sprintf("sched-upd-codec-%d", time.Now().UnixNano())
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "24h", "--paused", "--max-attempts", "4", site.URL+"/c/1"); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	defer starter(t, "", []string{"BATCHFETCH_CODEC_KEYS=" + keys}, "schedule", "delete", id)
	if r := starter(t, "", nil, "schedule", "update", id, site.URL+"/c/2", site.URL+"/c/3"); r.code != 0 {
		t.Fatalf("update: exit %d %s", r.code, r.stderr)
	}
	c, err := client.Dial(client.Options{HostPort: hostPort, DataConverter: cd.DataConverter()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in, d := scheduledInput(t, c, id, cd.DataConverter())
	if !slices.Equal(in.URLs, []string{site.URL + "/c/2", site.URL + "/c/3"}) || in.MaxAttempts != 4 {
		t.Errorf("after the update: %v, max_attempts %d", in.URLs, in.MaxAttempts)
	}
	p := d.Schedule.Action.(*client.ScheduleWorkflowAction).Args[0].(*commonpb.Payload)
	if strings.Contains(string(p.GetData()), "/c/2") {
		t.Errorf("the updated input is in the clear: %.80q", p.GetData())
	}
	os.Unsetenv("BATCHFETCH_CODEC_KEYS")
	if r := starter(t, "", nil, "schedule", "update", id, site.URL+"/c/4"); r.code != exitUsage || !strings.Contains(r.stderr, "BATCHFETCH_CODEC_KEYS") {
		t.Errorf("update without the keys: exit %d, want %d saying to set them\n%s", r.code, exitUsage, r.stderr)
	}
}
