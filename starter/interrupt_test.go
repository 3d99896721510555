package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// Ctrl-C while the Temporal server does not answer stops the wait at
// once, with the batch's IDs and exit 130, as when it answers.
func TestCtrlCWhileTheServerIsUnreachable(t *testing.T) {
	port := freeport.Run(t, 8)
	held := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer held.Close()
	cfg := devstack.Config{DBFile: filepath.Join(t.TempDir(), "dev.sqlite"), Port: port, Workers: workers.Config{StopTimeout: 100 * time.Millisecond}}
	stack, err := devstack.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stack.Stop() }()
	addr := stack.FrontendAddress()
	lines, exited, cmd := watchStderr(t, addr, "--blob-dir", stack.BlobDir(), held.URL+"/held")
	defer func() { _ = cmd.Process.Kill() }()
	waitForLine(t, lines, time.Minute, "0/1", "in flight 1")
	stack.Stop()
	waitForLine(t, lines, time.Minute, "starter: Temporal server at "+addr+" unreachable for ")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var rest []string
	stopped := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if ok {
				rest = append(rest, l)
				continue
			}
			code := <-exited
			said := strings.Join(rest, "\n")
			if code != exitInterrupted || !strings.Contains(said, "stopped waiting; the batch goes on: workflow_id=") {
				t.Errorf("exit %d after Ctrl-C, want %d; it said:\n%s", code, exitInterrupted, said)
			}
			return
		case <-stopped:
			t.Fatalf("still waiting 15 s after Ctrl-C; it said:\n%s", strings.Join(rest, "\n"))
		}
	}
}
