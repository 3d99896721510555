package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// clientEnv clears every variable ClientOptions reads, then sets vars.
func clientEnv(t *testing.T, vars map[string]string) {
	t.Helper()
	for _, name := range []string{"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE",
		"TEMPORAL_TLS", "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH", "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
		"TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_CODEC_ENDPOINT", "BATCHFETCH_CODEC_KEYS", "BATCHFETCH_CODEC_KEY_FILE"} {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
}

// The connection comes from the temporal CLI's own config file and
// profiles (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE), the environment
// winning over the file, with the defaults when neither says.
func TestClientOptionsProfilesAndPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(file, []byte(`
[profile.default]
address = "default.example:7233"
namespace = "dev"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "key-from-file"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name         string
		env          map[string]string
		hostPort, ns string
		credentials  bool
		tls          bool
	}{
		{name: "nothing set", env: map[string]string{"TEMPORAL_CONFIG_FILE": filepath.Join(t.TempDir(), "none.toml")}, hostPort: "localhost:7233", ns: "default"},
		{name: "the file's default profile", env: map[string]string{"TEMPORAL_CONFIG_FILE": file}, hostPort: "default.example:7233", ns: "dev"},
		{name: "TEMPORAL_PROFILE picks one", env: map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "cloud"},
			hostPort: "ns.acct.tmprl.cloud:7233", ns: "ns.acct", credentials: true, tls: true},
		{name: "the environment wins over the file", env: map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "cloud",
			"TEMPORAL_ADDRESS": "127.0.0.1:7233", "TEMPORAL_NAMESPACE": "mine"},
			hostPort: "127.0.0.1:7233", ns: "mine", credentials: true, tls: true},
		{name: "an API key alone turns TLS on", env: map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_API_KEY": "k",
			"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233"}, hostPort: "ns.acct.tmprl.cloud:7233", ns: "dev", credentials: true, tls: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			clientEnv(t, c.env)
			opts, err := ClientOptions()
			if err != nil {
				t.Fatal(err)
			}
			if opts.HostPort != c.hostPort || opts.Namespace != c.ns {
				t.Errorf("address %q, namespace %q; want %q, %q", opts.HostPort, opts.Namespace, c.hostPort, c.ns)
			}
			if got := opts.Credentials != nil; got != c.credentials {
				t.Errorf("credentials set: %v, want %v", got, c.credentials)
			}
			if got := opts.ConnectionOptions.TLS != nil; got != c.tls {
				t.Errorf("TLS set: %v, want %v", got, c.tls)
			}
		})
	}
}

// A profile the file does not have is an error that names it.
func TestClientOptionsUnknownProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "temporal.toml")
	if err := os.WriteFile(file, []byte("[profile.default]\naddress = \"a:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clientEnv(t, map[string]string{"TEMPORAL_CONFIG_FILE": file, "TEMPORAL_PROFILE": "nope"})
	if _, err := ClientOptions(); err == nil {
		t.Fatal("no error for a profile the file does not have")
	} else {
		t.Logf("%v", err)
	}
}
