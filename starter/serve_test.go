package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// serveUntilServing runs `starter --dev --serve` on db with args, reads its
// stderr until it says it serves the Web UI, then stops it as Ctrl-C does,
// and returns all it said.
func serveUntilServing(t *testing.T, db string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--dev", "--serve", "--dev-db", db, "--dev-port", "0", "--dev-ui-port", "0", "--quiet"}, args...)...)
	cmd.Env = os.Environ()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said strings.Builder
	lines := bufio.NewScanner(pipe)
	for lines.Scan() {
		said.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "serving the Web UI at ") {
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = cmd.Wait() // the demo batch's exit status, or 0
	if !strings.Contains(said.String(), "serving the Web UI at ") {
		t.Fatalf("it never served:\n%s", said.String())
	}
	return said.String()
}

// --serve runs the demo batch on a fresh database, and a restart on the
// same database serves without running it again, unless --demo asks.
func TestServeRunsTheDemoOnAFreshDatabaseOnly(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.sqlite")
	if first := serveUntilServing(t, db); !strings.Contains(first, "batch workflow_id=") {
		t.Errorf("a fresh database did not run the demo batch:\n%s", first)
	}
	again := serveUntilServing(t, db)
	if strings.Contains(again, "batch workflow_id=") || !strings.Contains(again, "without the demo batch (this database ran it before: --demo runs it again)") {
		t.Errorf("a restart ran the demo batch again, or did not say why not:\n%s", again)
	}
	if asked := serveUntilServing(t, db, "--demo"); !strings.Contains(asked, "batch workflow_id=") {
		t.Errorf("--demo did not run the demo batch:\n%s", asked)
	}
}
