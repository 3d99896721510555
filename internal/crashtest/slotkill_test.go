package crashtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// socketOwner is which of procs has the TCP connection whose local port
// is port open (0 when none).
func socketOwner(t *testing.T, port int, procs []*proc) int {
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	inode := ""
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(p) == port {
			inode = f[9]
		}
	}
	for i, p := range procs {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", p.cmd.Process.Pid))
		for _, fd := range fds {
			if l, _ := os.Readlink(fd); l == "socket:["+inode+"]" {
				return i
			}
		}
	}
	return -1
}

// TestKilledWorkersSlotIsTakenOver: two fetch worker processes hold a
// batch's per_host max_in_flight 1 in their blob store (they outnumber
// it). The worker whose request is open is killed (SIGKILL): README says
// its slot "is taken over once" the batch's attempt_timeout plus 15 s
// has passed. The other worker should ask the host again within that
// (plus the activity's heartbeat timeout to notice), and the batch end
// with every URL ok and no slot record left.
func TestKilledWorkersSlotIsTakenOver(t *testing.T) {
	type arrival struct {
		at   time.Time
		port int
	}
	var mu sync.Mutex
	var arrivals []arrival
	open, most := 0, 0
	first := make(chan struct{}, 1)
	l, err := net.Listen("tcp", "127.0.1.206:0")
	if err != nil {
		t.Fatal(err)
	}
	site := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, p, _ := net.SplitHostPort(r.RemoteAddr)
		port, _ := strconv.Atoi(p)
		mu.Lock()
		arrivals = append(arrivals, arrival{time.Now(), port})
		open++
		most = max(most, open)
		mu.Unlock()
		select {
		case first <- struct{}{}:
		default:
		}
		time.Sleep(1500 * time.Millisecond)
		mu.Lock()
		open--
		mu.Unlock()
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	site.Listener.Close()
	site.Listener = l
	site.Start()
	t.Cleanup(site.Close)

	c := newServer(t)
	var fetchers []*proc
	for range 2 {
		p := &proc{t: t, name: "worker", env: c.fetch.env, args: []string{"--role", "fetch", "--allow", "127.0.1.0/24", "--blob-dir", c.blobDir, "--log-level", "warn"}}
		p.start()
		t.Cleanup(p.stop)
		fetchers = append(fetchers, p)
	}
	c.cpu.start()
	// Both poll, and have counted each other (at 1 and 3 s after start).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		d, err := c.client.DescribeTaskQueue(context.Background(), workflows.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err == nil && len(d.GetPollers()) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the two fetch workers do not poll")
		}
	}
	time.Sleep(3500 * time.Millisecond)

	var urls []string
	for i := range 8 {
		urls = append(urls, fmt.Sprintf("%s/p/%d", site.URL, i))
	}
	run, err := c.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: t.Name(), TaskQueue: workflows.TaskQueue},
		workflows.WorkflowName, workflows.Input{URLs: urls, AttemptTimeout: "5s", PerHost: &workflows.PerHost{MaxInFlight: 1}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("no request reached the host")
	}
	mu.Lock()
	port := arrivals[0].port
	mu.Unlock()
	owner := socketOwner(t, port, fetchers)
	if owner < 0 {
		t.Fatal("no fetch worker holds the host's first connection")
	}
	fetchers[owner].kill()
	killed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()
	var out workflows.Output
	err = run.Get(ctx, &out)
	mu.Lock()
	var after []time.Duration
	for _, a := range arrivals[1:] {
		after = append(after, a.at.Sub(killed).Round(100*time.Millisecond))
	}
	m := most
	mu.Unlock()
	t.Logf("killed worker %d; the host's later requests came %v after the kill; at most %d at once; %d ok of %d", owner, after, m, out.OK, len(urls))
	if err != nil {
		t.Fatalf("the batch did not end within 55 s of the kill: %v", err)
	}
	if out.OK != len(urls) {
		t.Errorf("%d of %d ok: %+v", out.OK, len(urls), out.Failures)
	}
	if len(after) == 0 || after[0] > 5*time.Second+15*time.Second+5*time.Second {
		t.Errorf("the next request came %v after the kill, want within attempt_timeout 5s + 15 s (and a few seconds)", after)
	}
	if m > 1 {
		t.Errorf("the host had %d requests open at once, want max_in_flight 1", m)
	}
	if left := leftBlobs(c.blobDir); len(left) > 0 {
		t.Errorf("the batch left %v", left)
	}
}
