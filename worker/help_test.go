package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Asking for the usage is no error: exit 0, the flags listed.
func TestHelpExitsZero(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--blob-dir") && !strings.Contains(string(out), "-blob-dir") {
		t.Errorf("worker --help: %v\n%s", err, out)
	}
	if err := exec.Command(bin, "--no-such-flag").Run(); err == nil {
		t.Errorf("an unknown flag exited 0")
	}
}
