package metrics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/metrics"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

const dashboardFile = "../../deploy/grafana/dashboards/batchfetch.json"

// TestDashboardQueriesExportedMetrics reads every query of the batchfetch
// Grafana dashboard (its panels' and its variables') and checks that each
// metric it selects is one a fetch or a CPU worker exports, as each
// exports them after a batch with a fetched and a missing page; and that
// the dashboard shows every batchfetch_* metric they export.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	exprs := dashboardQueries(t, dashboardFile)
	if len(exprs) < 10 {
		t.Fatalf("%s: %d queries, want the dashboard's panels", dashboardFile, len(exprs))
	}
	exported := map[string]bool{}
	for _, families := range exportedAfterABatch(t) {
		for name := range seriesNames(families) {
			exported[name] = true
		}
	}
	unknown, err := unknownMetrics(exprs, exported)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range unknown {
		t.Errorf("the dashboard queries %s, which no worker exports", name)
	}
	shown := map[string]bool{} // families: a histogram's _bucket shows it
	for _, e := range exprs {
		names, _ := metricNames(e)
		for _, n := range names {
			shown[n], shown[histogramFamily(n)] = true, true
		}
	}
	var notShown []string
	for name := range exported {
		if strings.HasPrefix(name, "batchfetch_") && !shown[name] && !shown[histogramFamily(name)] {
			notShown = append(notShown, name)
		}
	}
	sort.Strings(notShown)
	if len(notShown) > 0 {
		t.Errorf("the workers export %q, which no panel shows", notShown)
	}
}

// histogramFamily is the family a histogram's series belongs to.
func histogramFamily(series string) string {
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if f, ok := strings.CutSuffix(series, suffix); ok {
			return f
		}
	}
	return series
}

// dashboardQueries returns the PromQL of every panel target (rows'
// panels included) and of every query variable of a dashboard file.
func dashboardQueries(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string            `json:"title"`
		Targets []json.RawMessage `json:"targets"`
		Panels  []panel           `json:"panels"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var exprs []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, raw := range p.Targets {
				var target struct {
					Expr string `json:"expr"`
				}
				if err := json.Unmarshal(raw, &target); err != nil || target.Expr == "" {
					t.Errorf("%s: panel %q has a target without a PromQL expr", file, p.Title)
					continue
				}
				exprs = append(exprs, target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		var s string
		if json.Unmarshal(v.Query, &s) != nil {
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("%s: variable %s: query %s", file, v.Name, v.Query)
				continue
			}
			s = q.Query
		}
		e, err := variableExpr(s)
		if err != nil {
			t.Errorf("%s: variable %s: %v", file, v.Name, err)
			continue
		}
		exprs = append(exprs, e)
	}
	return exprs
}

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
var queryResult = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)

// variableExpr is the PromQL inside a Grafana Prometheus variable query:
// label_values(EXPR, label) or query_result(EXPR).
func variableExpr(q string) (string, error) {
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return m[1], nil
	}
	if m := queryResult.FindStringSubmatch(q); m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("query %q: want label_values(EXPR, label) or query_result(EXPR)", q)
}

// exportedAfterABatch runs a fetch and a CPU worker as the worker binary
// does (each its own metrics.New(role) registry, fed by its client and
// its activities) on a batch with a page and a missing page, then returns
// each one's /metrics families (name to TYPE), after the SDK's metrics
// are flushed.
func exportedAfterABatch(t *testing.T) map[string]map[string]string {
	t.Helper()
	stack, err := devstack.Start(context.Background(), devstack.Config{NoWorkers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("a page"))
	}))
	defer site.Close()
	roles := map[string]*metrics.Metrics{}
	var stops []func()
	for _, role := range []string{workers.RoleFetch, workers.RoleCPU} {
		m := metrics.New(role)
		c, err := client.Dial(client.Options{HostPort: stack.FrontendAddress(), Logger: logging.SDK(zap.NewNop()), MetricsHandler: m.SDKHandler()})
		if err != nil {
			t.Fatal(err)
		}
		pools, err := workers.Start(c, workers.Config{Role: role, Store: stack.Store, Observer: m,
			HTTP: activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		roles[role] = m
		stops = append(stops, func() { pools.Stop(); c.Close(); _ = m.Close() })
	}
	run, err := stack.Client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
		workflows.Input{URLs: []string{site.URL + "/page", site.URL + "/missing"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, stop := range stops {
		stop() // Close reports the SDK's metrics that are due
	}
	out := map[string]map[string]string{}
	for role, m := range roles {
		out[role] = families(t, m)
	}
	return out
}

// families reads a registry's /metrics page into its families' names and
// types (the # TYPE lines).
func families(t *testing.T, m *metrics.Metrics) map[string]string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDashboardFilesProvisionable checks what Grafana's file provisioning
// needs of each dashboard in deploy/grafana/dashboards: JSON, a uid of its
// own, no id (an id Grafana does not have makes it refuse the file); and
// that the batchfetch dashboard's panels query the data source its
// datasource variable picks and offer job and instance variables.
func TestDashboardFilesProvisionable(t *testing.T) {
	files, err := filepath.Glob("../../deploy/grafana/dashboards/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v, want batchfetch.json and temporal-sdk.json", files, err)
	}
	uids := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID   string           `json:"uid"`
			ID    *json.RawMessage `json:"id"`
			Title string           `json:"title"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.UID == "" || uids[d.UID] != "" {
			t.Errorf("%s: uid %q (also %s), want one of its own", f, d.UID, uids[d.UID])
		}
		uids[d.UID] = f
		if d.ID != nil && string(*d.ID) != "null" {
			t.Errorf("%s: id %s, want null", f, *d.ID)
		}
	}
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title      string          `json:"title"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
				Type string `json:"type"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
		t.Errorf("variables %v, want datasource (a data source), job and instance", vars)
	}
	for _, p := range d.Panels {
		if p.Type != "row" && !strings.Contains(string(p.Datasource), `"${datasource}"`) {
			t.Errorf("panel %q: data source %s, want ${datasource}", p.Title, p.Datasource)
		}
	}
}
