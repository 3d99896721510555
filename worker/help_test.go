package main

import (
	"errors"
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
	// A bad command line exits 2 before anything connects, saying what
	// is wrong (no Temporal server is running for this test).
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"--role", "nope"}, `--role "nope": want fetch, cpu, all or codec`},
		{[]string{"--cpu-slots", "0"}, "--fetch-slots and --cpu-slots must be at least 1"},
		{[]string{"--max-conns-per-host", "-1"}, "--max-conns-per-host must be at least 0"},
		{[]string{"--allow", "not a cidr!!"}, `allow "not a cidr!!": not a CIDR, an address or a host name`},
		{[]string{"--allow", "10.0.0.0/33"}, `allow "10.0.0.0/33"`},
		{[]string{"healthcheck"}, "usage: worker healthcheck URL"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(cmd.Environ(), "TEMPORAL_ADDRESS=127.0.0.1:1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "worker starting") {
			t.Errorf("worker %q: %v\n%s\nwant exit 2 and %q, before starting", tc.args, err, out, tc.want)
		}
	}
}
