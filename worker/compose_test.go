package main

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
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

// TestPrometheusScrapesEveryWorker checks that the observability
// profile's Prometheus scrapes every compose service that serves
// --metrics-listen, at the port it listens on, and that the Grafana
// provisioning the compose file mounts is there.
func TestPrometheusScrapesEveryWorker(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command  []string `yaml:"command"`
			Volumes  []string `yaml:"volumes"`
			Profiles []string `yaml:"profiles"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile("../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			JobName      string `yaml:"job_name"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{} // service:port
	for _, sc := range prom.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				scraped[n+":"+strconv.Itoa(d.Port)] = true
			}
		}
		for _, s := range sc.StaticConfigs {
			for _, target := range s.Targets {
				scraped[target] = true
			}
		}
	}
	workersSeen := 0
	for name, svc := range compose.Services {
		for i, arg := range svc.Command {
			if arg != "--metrics-listen" || i+1 == len(svc.Command) {
				continue
			}
			workersSeen++
			_, port, err := net.SplitHostPort(svc.Command[i+1])
			if err != nil {
				t.Errorf("%s: --metrics-listen %q: %v", name, svc.Command[i+1], err)
				continue
			}
			if !scraped[name+":"+port] {
				t.Errorf("%s serves metrics on :%s, which deploy/prometheus/prometheus.yml does not scrape (it scrapes %v)", name, port, scraped)
			}
		}
	}
	if workersSeen < 2 {
		t.Errorf("%d services serve --metrics-listen, want the fetch and CPU workers", workersSeen)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		svc, ok := compose.Services[name]
		if !ok || len(svc.Profiles) != 1 || svc.Profiles[0] != "observability" {
			t.Errorf("service %s: %+v, want it in the observability profile", name, svc)
		}
		for _, v := range svc.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if !strings.HasPrefix(src, "./") {
				continue // a named volume
			}
			if _, err := os.Stat(filepath.Join("..", src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}
	b, err = os.ReadFile("../deploy/grafana/provisioning/dashboards/batchfetch.yml")
	if err != nil {
		t.Fatal(err)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(b, &provider); err != nil || len(provider.Providers) != 1 {
		t.Fatalf("dashboard provider: %v %+v", err, provider)
	}
	mounted := false
	for _, v := range compose.Services["grafana"].Volumes {
		parts := strings.Split(v, ":")
		mounted = mounted || (len(parts) > 1 && parts[0] == "./deploy/grafana/dashboards" && parts[1] == provider.Providers[0].Options.Path)
	}
	if !mounted {
		t.Errorf("Grafana loads dashboards from %s, where the compose file does not mount deploy/grafana/dashboards", provider.Providers[0].Options.Path)
	}
}
