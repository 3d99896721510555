package main

import (
	"flag"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/batchfetch/batchfetch/internal/cli"
)

// TestComposeFileUsesRealFlags checks that every flag and BATCHFETCH_*
// variable docker-compose.yml gives a batchfetch container is one the
// worker (or the starter) accepts.
func TestComposeFileUsesRealFlags(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	fs, _ := newFlags()
	byEnv := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { byEnv[cli.EnvName("BATCHFETCH_", f.Name)] = true })
	// Read by the codec package, not a flag.
	byEnv["BATCHFETCH_CODEC_KEYS"], byEnv["BATCHFETCH_CODEC_TOKEN"] = true, true
	checked := 0
	for name, svc := range compose.Services {
		if !strings.HasPrefix(svc.Image, "batchfetch") || len(svc.Entrypoint) > 0 {
			continue // not the worker
		}
		checked++
		for i := 0; i < len(svc.Command); i++ {
			arg := svc.Command[i]
			if !strings.HasPrefix(arg, "--") {
				continue
			}
			flagName, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
			if fs.Lookup(flagName) == nil {
				t.Errorf("%s: the worker has no flag --%s", name, flagName)
			}
		}
		if err := fs.Parse(svc.Command); err != nil {
			t.Errorf("%s: the worker refuses its command %q: %v", name, svc.Command, err)
		}
		for k := range svc.Environment {
			if strings.HasPrefix(k, "BATCHFETCH_") && !byEnv[k] {
				t.Errorf("%s: the worker reads no variable %s", name, k)
			}
		}
	}
	if checked < 3 {
		t.Errorf("checked %d worker services, want the fetch, CPU and codec services", checked)
	}
}
