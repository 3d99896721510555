package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/workflows"
)

// TestIncrementalSchedule: `schedule create --incremental` with a short
// interval against a site whose pages keep their ETag, change, send no
// validators, or go missing. The second run that completes asks with the
// first run's validators: not_modified, changed and http_error come out
// right, the site sees the conditional headers and sends no body for a
// 304. Then pause, list, trigger and delete, as a user runs them.
func TestIncrementalSchedule(t *testing.T) {
	var mu sync.Mutex
	asked := map[string][]string{}
	bodies := map[string]int{}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		asked[r.URL.Path] = append(asked[r.URL.Path], r.Header.Get("If-None-Match"))
		n := len(asked[r.URL.Path])
		switch r.URL.Path {
		case "/keep":
			w.Header().Set("ETag", `"k1"`)
			if r.Header.Get("If-None-Match") == `"k1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		case "/change":
			w.Header().Set("ETag", fmt.Sprintf(`"c%d"`, n))
		case "/gone":
			if n > 1 {
				http.NotFound(w, r)
				return
			}
		case "/missing":
			http.NotFound(w, r)
			return
		}
		bodies[r.URL.Path]++
		fmt.Fprintf(w, "%s version %d", r.URL.Path, map[bool]int{true: n, false: 1}[r.URL.Path == "/change"])
	}))
	defer site.Close()
	id := fmt.Sprintf("nightly-%d", time.Now().UnixNano())
	args := []string{"schedule", "create", "--id", id, "--every", "2s", "--incremental", "--blob-dir", workersBlobDir}
	for _, p := range []string{"/keep", "/change", "/plain", "/gone", "/missing"} {
		args = append(args, site.URL+p)
	}
	if r := starter(t, "", nil, args...); r.code != 0 || !strings.Contains(r.stdout, "schedule "+id+" created") {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	defer starter(t, "", nil, "schedule", "delete", id)
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--every", "2s", site.URL+"/keep"); r.code != 2 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("create again: exit %d, %s", r.code, r.stderr)
	}

	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	// The first two runs that complete, as the schedule lists them.
	var runs []string
	deadline := time.Now().Add(90 * time.Second)
	for len(runs) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("two runs did not complete in 90 s: %v", runs)
		}
		d, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		runs = runs[:0]
		for _, a := range d.Info.RecentActions {
			if a.StartWorkflowResult == nil {
				continue
			}
			w, err := c.DescribeWorkflowExecution(ctx, a.StartWorkflowResult.WorkflowID, a.StartWorkflowResult.FirstExecutionRunID)
			if err == nil && w.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED && len(runs) < 2 {
				runs = append(runs, a.StartWorkflowResult.WorkflowID)
			}
		}
		time.Sleep(200 * time.Millisecond) // polling the schedule's own record
	}
	if _, err := c.ScheduleClient().GetHandle(ctx, id).Describe(ctx); err == nil {
		_ = c.ScheduleClient().GetHandle(ctx, id).Pause(ctx, client.SchedulePauseOptions{}) // no third run under the assertions
	}
	// The Web UI shows which schedule started a run: its memo.
	w, err := c.DescribeWorkflowExecution(ctx, runs[1], "")
	if err != nil {
		t.Fatal(err)
	}
	var sched string
	_ = converter.GetDefaultDataConverter().FromPayload(w.GetWorkflowExecutionInfo().GetMemo().GetFields()["schedule"], &sched)
	if sched != id {
		t.Errorf("memo schedule = %q, want %q", sched, id)
	}

	r := starter(t, "", nil, "results", "--json", "--blob-dir", workersBlobDir, runs[1])
	var out workflows.Output
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("results of %s: exit %d, %v\n%s", runs[1], r.code, err, r.stderr)
	}
	got := map[string]string{}
	for _, res := range out.Results {
		ch := "nil"
		if res.Changed != nil {
			ch = fmt.Sprint(*res.Changed)
		}
		got[res.URL[len(site.URL):]] = res.Outcome + " " + ch
	}
	want := map[string]string{"/keep": "not_modified false", "/change": "ok true", "/plain": "ok false", "/gone": "http_error true", "/missing": "http_error false"}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("second run, %s: %s, want %s", p, got[p], w)
		}
	}
	if out.NotModified == nil || *out.NotModified != 1 || out.Changed == nil || *out.Changed != 2 || r.code != 1 {
		t.Errorf("second run: not_modified %v changed %v, exit %d (1: a URL failed)", out.NotModified, out.Changed, r.code)
	}
	mu.Lock()
	if a := asked["/keep"]; len(a) < 2 || a[0] != "" || a[1] != `"k1"` || bodies["/keep"] != 1 {
		t.Errorf("/keep: If-None-Match %q, %d bodies sent; want none then \"k1\", one body", a, bodies["/keep"])
	}
	if a := asked["/plain"]; len(a) < 2 || a[1] != "" {
		t.Errorf("/plain: If-None-Match %q, want none (it sent no validators)", a)
	}
	mu.Unlock()
	// What changed: a new body, and a page that was ok and now is a 404;
	// not one that is a 404 both times.
	for _, jsonOut := range []bool{false, true} {
		args := []string{"results", "--changed", "--blob-dir", workersBlobDir, runs[1]}
		if jsonOut {
			args = append(args, "--json")
		}
		r := starter(t, "", nil, args...)
		listed := r.stdout
		if jsonOut {
			// The results it lists (its failures sample is the batch's).
			var out workflows.Output
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("results --changed --json: %v\n%s", err, r.stdout)
			}
			listed = ""
			for _, res := range out.Results {
				listed += fmt.Sprintf("%s %s %v\n", res.URL, res.Outcome, *res.Changed)
			}
		}
		if !strings.Contains(listed, site.URL+"/change") || !strings.Contains(listed, site.URL+"/gone") ||
			strings.Contains(listed, "/keep") || strings.Contains(listed, "/plain") || strings.Contains(listed, "/missing") {
			t.Errorf("results --changed (json %v):\n%s", jsonOut, listed)
		}
		if !jsonOut && !strings.Contains(r.stdout, "http_error  404") {
			t.Errorf("results --changed: no 404 row for /gone:\n%s", r.stdout)
		}
	}

	// The other commands, as a user runs them.
	if r := starter(t, "", nil, "schedule", "pause", "--note", "for the test", id); r.code != 0 {
		t.Errorf("pause: exit %d %s", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "schedule", "describe", id); r.code != 0 || !strings.Contains(r.stdout, "paused    true (for the test)") || !strings.Contains(r.stdout, "overlap   skip") || !strings.Contains(r.stdout, runs[0]) {
		t.Errorf("describe: exit %d\n%s", r.code, r.stdout)
	}
	if r := starter(t, "", nil, "schedule", "list"); !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "every 2s") {
		t.Errorf("list:\n%s%s", r.stdout, r.stderr)
	}
	if r := starter(t, "", nil, "schedule", "unpause", id); r.code != 0 {
		t.Errorf("unpause: exit %d %s", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "schedule", "trigger", id); r.code != 0 {
		t.Errorf("trigger: exit %d %s", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "schedule", "delete", id); r.code != 0 {
		t.Errorf("delete: exit %d %s", r.code, r.stderr)
	}
	if r := starter(t, "", nil, "schedule", "describe", id); r.code != 4 {
		t.Errorf("describe after delete: exit %d, want 4\n%s", r.code, r.stderr)
	}
}

// TestScheduleCreateTwiceKeepsTheFirst: creating a schedule under an ID
// in use is refused before anything changes (the first one's URL list,
// kept in the blob store when long, stays as it was), and delete removes
// that list.
func TestScheduleCreateTwiceKeepsTheFirst(t *testing.T) {
	id := fmt.Sprintf("twice-%d", time.Now().UnixNano())
	list := func(tag string) []string {
		var urls []string
		for i := range workflows.InlineLimit + 1 {
			urls = append(urls, fmt.Sprintf("%s/%s/%d", site.URL, tag, i))
		}
		return urls
	}
	create := func(tag string) result {
		return starter(t, strings.Join(list(tag), "\n"), nil, "schedule", "create", "--id", id, "--every", "24h", "--paused", "--blob-dir", workersBlobDir, "--file", "-")
	}
	if r := create("a"); r.code != 0 {
		t.Fatalf("create: exit %d %s", r.code, r.stderr)
	}
	if r := create("b"); r.code != 2 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("create again: exit %d %s", r.code, r.stderr)
	}
	files, _ := filepath.Glob(filepath.Join(workersBlobDir, "inputs", "schedules", id+"-*.txt"))
	if len(files) != 1 {
		t.Fatalf("lists in the blob store: %v, want one", files)
	}
	b, _ := os.ReadFile(files[0])
	if !strings.Contains(string(b), site.URL+"/a/0\n") || strings.Contains(string(b), "/b/") {
		t.Errorf("the first schedule's list changed: %.80s", b)
	}
	if r := starter(t, "", nil, "schedule", "delete", "--blob-dir", workersBlobDir, id); r.code != 0 {
		t.Fatalf("delete: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Errorf("delete left %s: %v", files[0], err)
	}
	if r := starter(t, "", nil, "schedule", "create", "--id", id, "--cron", "not a cron", site.URL+"/x"); r.code != 2 {
		t.Errorf("a bad --cron: exit %d, want 2\n%s", r.code, r.stderr)
	}
}
