package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/batchfetch/batchfetch/blobstore"
)

// procWorker is a worker binary of its own (role all), on task queues of
// its own, with the default flags but those that point it at the stack,
// the blob directory and the site (and the sizes given on the bench's
// command line): a worker as users run one, measured alone.
type procWorker struct {
	cmd             *exec.Cmd
	queue, cpuQueue string
	store           blobstore.Store // its blob directory, for inputs and results
	args            []string
	log             tail // the end of its log (stderr)
	stop            func()
}

// startProcWorker starts the worker on queues bench-NAME and
// bench-NAME-cpu with --blob-dir blobDir, and waits until it polls.
func startProcWorker(c *config, st *stack, name, blobDir string) (*procWorker, error) {
	store, err := blobstore.NewDir(blobDir)
	if err != nil {
		return nil, err
	}
	return startProcWorkerOn(c, st, name, store, []string{"--blob-dir", blobDir}, nil)
}

// startProcWorkerOn is startProcWorker on another store: blobArgs are the
// flags that name it to the worker (--blob-url ...), env what the worker
// needs beside them (credentials), and store the same store as the bench
// reaches it.
func startProcWorkerOn(c *config, st *stack, name string, store blobstore.Store, blobArgs, env []string) (*procWorker, error) {
	bin, err := st.binary("worker")
	if err != nil {
		return nil, err
	}
	w := &procWorker{queue: "bench-" + name, cpuQueue: "bench-" + name + "-cpu", store: store}
	w.args = append(append([]string{"--task-queue", w.queue, "--cpu-task-queue", w.cpuQueue}, blobArgs...), sizeFlags(c)...)
	w.cmd = exec.Command(bin, w.args...)
	w.cmd.Env = append(append(os.Environ(), "TEMPORAL_ADDRESS="+st.FrontendAddress(), "TEMPORAL_NAMESPACE=default"), env...)
	w.cmd.Stderr = io.MultiWriter(&w.log, os.Stderr)
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a worker process: %w", err)
	}
	w.stop = atExit(func() {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = w.cmd.Process.Kill()
			<-done
		}
	})
	if err := waitPollers(st, w.queue); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// sizeFlags are the worker flags every worker process of the bench gets:
// the addresses of the site, a quiet log, and the sizes asked for on the
// bench's command line (none by default).
func sizeFlags(c *config) []string {
	args := []string{"--allow", "127.0.0.1,127.0.1.0/24", "--log-level", "warn"}
	if c.fetchSlots > 0 {
		args = append(args, "--fetch-slots", strconv.Itoa(c.fetchSlots))
	}
	if c.cpuSlots > 0 {
		args = append(args, "--cpu-slots", strconv.Itoa(c.cpuSlots))
	}
	if c.perHost > 0 {
		args = append(args, "--max-conns-per-host", strconv.Itoa(c.perHost))
	}
	return args
}

// waitPollers waits until a worker polls the workflow task queue.
func waitPollers(st *stack, queue string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := st.client.DescribeTaskQueue(context.Background(), queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		if err == nil && len(d.GetPollers()) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no worker polls %s a minute after the worker process started (last error: %v)", queue, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's view
	}
}

// memory reads the process's resident memory now (VmRSS) and at its peak
// (VmHWM).
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "VmRSS:" && f[0] != "VmHWM:") {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if f[0] == "VmRSS:" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return rss, hwm, nil
}

func (w *procWorker) pid() int { return w.cmd.Process.Pid }

// lastLog is the worker's last n log lines, each cut to 300 bytes and
// indented: what it said before a batch failed.
func (w *procWorker) lastLog(n int) string {
	lines := strings.Split(strings.TrimRight(w.log.String(), "\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	var b strings.Builder
	for _, l := range lines {
		if len(l) > 300 {
			l = l[:300] + "…"
		}
		if l != "" {
			b.WriteString("    " + l + "\n")
		}
	}
	return b.String()
}

// describe is the worker's command line, as the report shows it.
func (w *procWorker) describe() string {
	return "worker " + strings.Join(w.args, " ")
}
