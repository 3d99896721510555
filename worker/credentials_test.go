package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batchfetch/batchfetch/internal/cli"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// parse reads args and the environment as the worker does.
func parse(t *testing.T, args ...string) *settings {
	t.Helper()
	fs, st := newFlags()
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := cli.EnvFallback(fs, "BATCHFETCH_"); err != nil {
		t.Fatal(err)
	}
	return st
}

// --secret-hosts repeats; BATCHFETCH_SECRET_HOSTS holds entries
// separated by spaces or ';'.
func TestSecretHostsFlag(t *testing.T) {
	st := parse(t, "--secret-hosts", "A=api.example.com,*.example.org", "--secret-hosts", "B=10.0.0.1", "--secret-hosts", "A=more.example")
	want := secretHosts{"A": {"api.example.com", "*.example.org", "more.example"}, "B": {"10.0.0.1"}}
	if !reflect.DeepEqual(st.creds.hosts, want) {
		t.Errorf("flags: %v, want %v", st.creds.hosts, want)
	}
	t.Setenv("BATCHFETCH_SECRET_HOSTS", "A=api.example.com; B=b.example;C=c.example")
	st = parse(t)
	want = secretHosts{"A": {"api.example.com"}, "B": {"b.example"}, "C": {"c.example"}}
	if !reflect.DeepEqual(st.creds.hosts, want) {
		t.Errorf("environment: %v, want %v", st.creds.hosts, want)
	}
	fs, _ := newFlags()
	_ = fs.Parse(nil)
	t.Setenv("BATCHFETCH_SECRET_HOSTS", "A=ok.example;B=")
	if err := cli.EnvFallback(fs, "BATCHFETCH_"); err == nil || !strings.Contains(err.Error(), `BATCHFETCH_SECRET_HOSTS="A=ok.example;B="`) || !strings.Contains(err.Error(), `entry "B="`) {
		t.Errorf("a bad entry in the environment: %v", err)
	}
}

// At start the worker logs the names of its secrets, never a value; it
// warns of a scope for a secret it lacks and of files no header can
// name; the proxy secret, unless scoped, may go only to the proxy.
func TestCredentialsLogNamesNotValues(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"FILEONE": "file-value-1\n", "PROXY": "alice:proxy-value\n", "bad-name": "bad-value"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("BATCHFETCH_SECRET_ENVONE", "env-value-1")
	st := parse(t, "--secrets-dir", dir, "--secret-hosts", "MISSING=api.example.com", "--proxy", "http://proxy.example:3128", "--proxy-secret", "PROXY")
	if err := st.creds.check(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	var cfg workers.Config
	if err := st.creds.apply(&cfg, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, e := range logs.All() {
		text = append(text, fmt.Sprint(e.Message, e.ContextMap()))
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"ENVONE", "FILEONE", "PROXY", "bad-name", "--secret-hosts names a secret this worker does not have", "MISSING", "http://proxy.example:3128"} {
		if !strings.Contains(all, want) {
			t.Errorf("the log does not say %q:\n%s", want, all)
		}
	}
	for _, value := range []string{"env-value-1", "file-value-1", "proxy-value", "bad-value"} {
		if strings.Contains(all, value) {
			t.Errorf("the log shows a secret's value %q:\n%s", value, all)
		}
	}
	if _, hosts, ok, err := cfg.Secrets.Secret("PROXY"); !ok || err != nil || !reflect.DeepEqual(hosts, []string{"proxy.example"}) {
		t.Errorf("the proxy secret may go to %v (ok %v, %v), want only the proxy's host", hosts, ok, err)
	}
	if cfg.HTTP.Secrets == nil || cfg.HTTP.ProxySecret != "PROXY" || cfg.HTTP.Proxy != "http://proxy.example:3128" || !strings.HasPrefix(cfg.HTTP.UserAgent, "batchfetch/") {
		t.Errorf("the client's settings: %+v", cfg.HTTP)
	}

	st = parse(t, "--proxy", "http://proxy.example:3128", "--proxy-secret", "ABSENT")
	if err := st.creds.apply(&workers.Config{}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--proxy-secret ABSENT: the worker has no such secret (looked in BATCHFETCH_SECRET_ABSENT (no --secrets-dir))") {
		t.Errorf("a missing proxy secret: %v", err)
	}
	st = parse(t, "--secrets-dir", filepath.Join(dir, "nope"))
	if err := st.creds.apply(&workers.Config{}, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--secrets-dir") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing --secrets-dir: %v", err)
	}
}

// A proxy of the environment is logged without its password.
func TestDescribeProxyHidesPasswords(t *testing.T) {
	for _, v := range []string{"http://u:hunter2@proxy.example:3128", "u:hunter2@proxy.example:3128"} {
		t.Setenv("HTTPS_PROXY", v)
		c := &credentials{}
		if got := c.describeProxy(); strings.Contains(got, "hunter2") || !strings.Contains(got, "proxy.example") {
			t.Errorf("HTTPS_PROXY=%s is logged as %q", v, got)
		}
		if got := c.proxyHosts(); !reflect.DeepEqual(got, []string{"proxy.example"}) {
			t.Errorf("HTTPS_PROXY=%s: proxy hosts %v", v, got)
		}
	}
	if got := (&credentials{proxy: "socks5://u:hunter2@s.example:1080"}).describeProxy(); got != "socks5://u:xxxxx@s.example:1080" {
		t.Errorf("--proxy is logged as %q", got)
	}
}

// --user-agent (or BATCHFETCH_USER_AGENT) is the client's User-Agent.
func TestUserAgentFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--user-agent", "acme-crawler/3"}, "", "acme-crawler/3"},
		{nil, "acme-env/1", "acme-env/1"},
	} {
		t.Setenv("BATCHFETCH_USER_AGENT", tc.env)
		var cfg workers.Config
		if err := parse(t, tc.args...).creds.apply(&cfg, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		if cfg.HTTP.UserAgent != tc.want {
			t.Errorf("%v, BATCHFETCH_USER_AGENT=%q: User-Agent %q, want %q", tc.args, tc.env, cfg.HTTP.UserAgent, tc.want)
		}
	}
}
