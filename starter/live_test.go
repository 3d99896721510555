package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/codec"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// barCount reads the count of a bar line ("[##..] 1180/1200 ..."); ok is
// false for other lines.
var barCount = regexp.MustCompile(`^\[[#.]+\] (\d+)/(\d+)`)

func countOf(line string) (done, total int, ok bool) {
	m := barCount.FindStringSubmatch(line)
	if m == nil {
		return 0, 0, false
	}
	done, _ = strconv.Atoi(m[1])
	total, _ = strconv.Atoi(m[2])
	return done, total, true
}

// A staged batch of 1,200 URLs runs in chunks of 500, 500 and 200; the
// site holds the last 20 URLs of the last chunk. The progress query
// counts 1,000 URLs until that chunk ends, but the bar, and `starter
// status`, count the 180 its fetch has done: 1180/1200, no more while the
// 20 are held, and 1200/1200 at the end.
func TestTheBarCountsTheURLsOfRunningChunks(t *testing.T) {
	const queue, cpuQueue = "live-fetch", "live-cpu"
	for _, role := range []string{workers.RoleFetch, workers.RoleCPU} {
		w, err := testStack.StartWorkers(workers.Config{Role: role, TaskQueue: queue, CPUTaskQueue: cpuQueue})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	watchHeldBatch(t, testStack, 1200, nil, "--task-queue", queue, "--cpu-task-queue", cpuQueue)
}

// A batch of 10,500 URLs runs in two parts (child workflows): 20 chunks,
// then one, whose last 20 URLs the site holds. The bar counts the first
// part's 10,000 URLs and the 480 the second part's running chunk has
// done.
func TestTheBarCountsTheRunningChunksOfAPart(t *testing.T) {
	const queue, cpuQueue = "live-part-fetch", "live-part-cpu"
	for _, role := range []string{workers.RoleFetch, workers.RoleCPU} {
		w, err := testStack.StartWorkers(workers.Config{Role: role, TaskQueue: queue, CPUTaskQueue: cpuQueue})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	watchHeldBatch(t, testStack, workflows.ChunksPerPart*workflows.StagedChunkSize+500, nil, "--task-queue", queue, "--cpu-task-queue", cpuQueue)
}

// With BATCHFETCH_CODEC_KEYS the heartbeats are encrypted on the server:
// the starter reads them with its codec.
func TestTheBarCountsRunningChunksThroughTheCodec(t *testing.T) {
	keys := "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cd, err := codec.New(strings.Split(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	stack, err := devstack.Start(context.Background(), devstack.Config{BlobDir: t.TempDir(), DataConverter: cd.DataConverter(), FailureConverter: cd.FailureConverter()})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	watchHeldBatch(t, stack, 1200, []string{"BATCHFETCH_CODEC_KEYS=" + keys})
}

// watchHeldBatch runs a batch of total URLs, whose last 20 the site holds,
// with the starter (env and args added) against stack, whose workers
// serve it. Its last chunk has more than 20 URLs.
func watchHeldBatch(t *testing.T, stack *devstack.Stack, total int, env []string, args ...string) {
	t.Helper()
	const held = 20
	release := make(chan struct{})
	released := false
	letGo := func() {
		if !released {
			released = true
			close(release)
		}
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/live/"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		if n >= total-held {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "page "+r.URL.Path)
	}))
	defer site.Close()
	defer letGo() // before the site closes: it waits for the held requests

	var list strings.Builder
	for i := range total {
		fmt.Fprintf(&list, "%s/live/%d\n", site.URL, i)
	}
	file := filepath.Join(t.TempDir(), "urls.txt")
	if err := os.WriteFile(file, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint("live-", time.Now().UnixNano())
	addr := stack.FrontendAddress()
	lines, exited, cmd := watchStderrEnv(t, addr, env, append([]string{"--id", id, "--blob-dir", stack.BlobDir(), "--attempt-timeout", "5m", "--file", file}, args...)...)
	defer func() {
		_ = stack.Client.CancelWorkflow(context.Background(), id, "")
		_ = cmd.Process.Kill()
	}()

	// Until the held URLs are let go, no count may pass what can be done.
	var seen []string
	last := 0
	check := func(l string, most int) {
		seen = append(seen, l)
		n, tot, ok := countOf(l)
		if !ok || (n == 0 && tot == 0) { // not staged yet
			return
		}
		if tot != total || n > most || n < last {
			t.Errorf("bar %q after %d/%d: want a count that never goes back, at most %d of %d", l, last, total, most, total)
		}
		last = n
	}
	deadline := time.After(3 * time.Minute)
	for last != total-held {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the starter ended before its bar showed %d/%d:\n%s", total-held, total, strings.Join(seen, "\n"))
			}
			check(l, total-held)
		case <-deadline:
			t.Fatalf("no bar with %d/%d within 3 minutes; the starter said:\n%s", total-held, total, strings.Join(seen, "\n"))
		}
	}
	if t.Failed() {
		return
	}
	if d, err := stack.Client.DescribeWorkflowExecution(context.Background(), id, ""); err == nil {
		for _, act := range d.GetPendingActivities() {
			size := 0
			for _, p := range act.GetHeartbeatDetails().GetPayloads() {
				size += len(p.GetData())
			}
			t.Logf("pending %s %s: heartbeat details of %d bytes", act.GetActivityType().GetName(), act.GetActivityId(), size)
		}
	}
	// `starter status` says the same, the held chunk still running.
	if r := starter(t, "", append(env, "TEMPORAL_ADDRESS="+addr), "status", id); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("] %d/%d", total-held, total)) {
		t.Errorf("status: exit %d, want a bar with %d/%d:\n%s%s", r.code, total-held, total, r.stdout, r.stderr)
	}

	letGo()
	for l := range lines {
		check(l, total)
	}
	if code := <-exited; code != 0 {
		t.Fatalf("exit %d, want 0; the starter said:\n%s", code, strings.Join(seen, "\n"))
	}
	t.Logf("the starter said:\n%s", strings.Join(seen, "\n"))
	if last != total {
		t.Errorf("the last bar counts %d, want %d/%d:\n%s", last, total, total, strings.Join(seen, "\n"))
	}
}
