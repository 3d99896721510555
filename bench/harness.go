package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// stack is the dev stack the scenarios share (server, client, blob store,
// workers), in a directory of its own that stop removes.
type stack struct {
	*devstack.Stack
	client client.Client
	store  blobstore.Store
	dir    string
	cfg    workers.Config
	// worker is the worker process (with --worker-process) and
	// workerArgs its flags.
	worker     *exec.Cmd
	workerArgs []string
}

func startStack(c *config) (*stack, error) {
	dir, err := os.MkdirTemp(c.dir, ".bench-")
	if err != nil {
		return nil, err
	}
	dbFile := filepath.Join(dir, "bench.sqlite")
	if c.memoryDB {
		dbFile = ""
	}
	cfg := workers.Config{CPUSlots: c.cpuSlots, FetchSlots: c.fetchSlots, HTTP: loopback(c.perHost)}
	blobDir := filepath.Join(dir, "blobs")
	ds, err := devstack.Start(context.Background(), devstack.Config{DBFile: dbFile, BlobDir: blobDir, Workers: cfg, NoWorkers: c.workerProc})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	st := &stack{Stack: ds, client: ds.Client, store: ds.Store, dir: dir, cfg: cfg}
	if c.workerProc {
		// The worker as users run it: its own process, its default flags
		// but the ones that point it at this stack (and the sizes asked
		// for on the bench's command line).
		st.workerArgs = append([]string{"--blob-dir", blobDir}, sizeFlags(c)...)
		bin, err := st.binary("worker")
		if err == nil {
			st.worker = exec.Command(bin, st.workerArgs...)
			st.worker.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+ds.FrontendAddress(), "TEMPORAL_NAMESPACE=default")
			st.worker.Stderr = os.Stderr
			err = st.worker.Start()
		}
		if err != nil {
			st.stop()
			return nil, fmt.Errorf("starting the worker process: %w", err)
		}
	}
	return st, nil
}

// binary builds the command ./name (worker, starter) into the stack's
// directory, once.
func (s *stack) binary(name string) (string, error) {
	bin := filepath.Join(s.dir, name)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	build := exec.Command("go", "build", "-o", bin, "./"+name)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building the %s: %w", name, err)
	}
	return bin, nil
}

func (s *stack) stop() {
	if s.worker != nil && s.worker.Process != nil {
		_ = s.worker.Process.Signal(syscall.SIGTERM)
		_ = s.worker.Wait()
	}
	s.Stop()
	_ = os.RemoveAll(s.dir)
}

func slotsOf(cfg workers.Config) int {
	if cfg.CPUSlots > 0 {
		return cfg.CPUSlots
	}
	return workers.DefaultCPUSlots()
}

// loopback is the client configuration of both sides: the local site
// only (127.0.0.1 and its hosts 127.0.1.N).
func loopback(perHost int) activities.ClientConfig {
	return activities.ClientConfig{MaxConnsPerHost: perHost, Guard: activities.Guard{Allow: []string{"127.0.0.1", "127.0.1.0/24"}}}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if i := strings.Index(line, ":"); i >= 0 {
				return strings.TrimSpace(line[i+1:])
			}
		}
	}
	return "unknown CPU"
}
