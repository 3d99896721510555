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
		{[]string{"--per-host-rate", "fast"}, `--per-host-rate: "fast" is not N/s or N/m`},
		{[]string{"--per-host-rate", "0.0000001/s"}, `--per-host-rate: "0.0000001/s" is under the floor of one request per 10 minutes`},
		{[]string{"--per-host-max-in-flight", "-1"}, "--per-host-max-in-flight must be at least 0"},
		{[]string{"--allow", "not a cidr!!"}, `allow "not a cidr!!": not a CIDR, an address or a host name`},
		{[]string{"--allow", "10.0.0.0/33"}, `allow "10.0.0.0/33"`},
		{[]string{"--secret-hosts", "TOKEN"}, `invalid value "TOKEN" for flag -secret-hosts: entry "TOKEN": want NAME=HOST[,HOST...]`},
		{[]string{"--secret-hosts", "A=api.example.com;B=bad_host!"}, `entry "B=bad_host!": "bad_host!" is not a host name`},
		{[]string{"--secret-hosts", "my-key=api.example.com"}, `entry "my-key=api.example.com": secret name "my-key"`},
		{[]string{"--proxy", "ftp://u:hunter2@proxy.example"}, "--proxy: proxy ftp://u:xxxxx@proxy.example: the scheme is not http, https, socks5 or socks5h"},
		{[]string{"--proxy-secret", "no-dash"}, `--proxy-secret: secret name "no-dash"`},
		{[]string{"--proxy", "direct", "--proxy-secret", "PX"}, "--proxy-secret PX: there is no proxy to send it to"},
		{[]string{"healthcheck"}, "usage: worker healthcheck URL"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = append(cmd.Environ(), "TEMPORAL_ADDRESS=127.0.0.1:1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "worker starting") || strings.Contains(string(out), "hunter2") {
			t.Errorf("worker %q: %v\n%s\nwant exit 2 and %q, before starting", tc.args, err, out, tc.want)
		}
	}
}
