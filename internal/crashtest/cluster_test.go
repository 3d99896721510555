//go:build cluster

// The production shape, run for real: PostgreSQL, the Temporal server built
// from the pinned module and set up the way docker-compose.yml does it, the
// Web UI, and two fetch and two CPU workers, each its own process. Run with
//
//	go test -tags cluster -run TestCluster -v ./internal/crashtest
//
// It needs root (a PostgreSQL cluster of its own, a network namespace) and
// PostgreSQL's server package (.ci/run installs it where it is missing).
package crashtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/promtext"
	"github.com/batchfetch/batchfetch/internal/s3test"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// The partitioned worker's namespace and the pair of addresses on its veth,
// from 198.18.0.0/15 (kept for benchmarks, never routed). The Temporal
// server and the site listen on the host side, so every worker reaches them
// at the same address, and cutting the link cuts only the one worker off.
const (
	nsName   = "bfcluster"
	hostIf   = "bfc-host"
	nsIf     = "bfc-ns"
	hostAddr = "198.18.0.1"
	nsAddr   = "198.18.0.2"
)

// clusterBins builds, once, what the cluster test runs besides the
// worker: the starter, the Temporal server, its SQL tool and the UI server,
// all at the versions go.mod pins, into the package's bin directory.
var clusterBins = sync.OnceValues(func() (string, error) {
	dir := bin
	for name, pkg := range map[string]string{
		"starter":           "../../starter",
		"temporal-server":   "go.temporal.io/server/cmd/server",
		"temporal-sql-tool": "go.temporal.io/server/cmd/tools/sql",
		"ui-server":         "github.com/temporalio/ui-server/v2/cmd/server",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
})

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// postgres is a PostgreSQL cluster of the test's own, dropped at the end.
type postgres struct {
	version, name string
	port          int
}

func startPostgres(t *testing.T) *postgres {
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(versions) == 0 {
		t.Fatal("no PostgreSQL server: apt-get install postgresql (.ci/run does)")
	}
	// Clusters left by interrupted runs (their test process is gone) go first.
	if out, err := exec.Command("pg_lsclusters", "-h").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[1], "batchfetch") {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimPrefix(f[1], "batchfetch")); err == nil && syscall.Kill(pid, 0) != nil {
				_ = exec.Command("pg_dropcluster", "--stop", f[0], f[1]).Run()
			}
		}
	}
	pg := &postgres{
		version: filepath.Base(filepath.Dir(filepath.Dir(versions[len(versions)-1]))),
		name:    fmt.Sprintf("batchfetch%d", os.Getpid()),
		port:    freeport.Run(t, 1),
	}
	run(t, "pg_createcluster", pg.version, pg.name, "-p", strconv.Itoa(pg.port), "--start", "--", "--auth-host=scram-sha-256")
	t.Cleanup(func() { _ = exec.Command("pg_dropcluster", "--stop", pg.version, pg.name).Run() })
	pg.psql(t, "CREATE ROLE temporal LOGIN CREATEDB PASSWORD 'temporal'")
	return pg
}

func (pg *postgres) psql(t *testing.T, sql string) string {
	t.Helper()
	return strings.TrimSpace(run(t, "runuser", "-u", "postgres", "--", "psql", "-p", strconv.Itoa(pg.port), "-tAc", sql))
}

// size is the bytes on disk of Temporal's two databases.
func (pg *postgres) size(t *testing.T) int64 {
	n, err := strconv.ParseInt(pg.psql(t, "SELECT sum(pg_database_size(datname)) FROM pg_database WHERE datname IN ('temporal', 'temporal_visibility')"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// cpu is the CPU time of the cluster's processes: the postmaster, the
// children it has reaped, and those still running.
func (pg *postgres) cpu(t *testing.T) time.Duration {
	pidFile := fmt.Sprintf("/var/lib/postgresql/%s/%s/postmaster.pid", pg.version, pg.name)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	master, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	own, reaped, _ := procTicks(master)
	total := own + reaped
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if own, _, parent := procTicks(pid); parent == int64(master) {
			total += own
		}
	}
	return ticksTime(total)
}

// procTicks is the CPU time of a running process (own) and of the
// children it has reaped, in clock ticks, and its parent's pid (-1 for
// a process that is gone).
func procTicks(pid int) (own, reaped, parent int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, -1
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	// After the name: state ppid ... utime(11) stime(12) cutime(13) cstime(14).
	return n(11) + n(12), n(13) + n(14), n(1)
}

func ticksTime(ticks int64) time.Duration { return time.Duration(ticks) * time.Second / 100 } // USER_HZ

// netns is the partitioned worker's network namespace and its veth pair.
type netns struct{ t *testing.T }

func newNetns(t *testing.T) *netns {
	// A namespace left by an interrupted run goes first.
	_ = exec.Command("ip", "netns", "del", nsName).Run()
	_ = exec.Command("ip", "link", "del", hostIf).Run()
	run(t, "ip", "netns", "add", nsName)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", nsName).Run()
		_ = exec.Command("ip", "link", "del", hostIf).Run()
	})
	run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	run(t, "ip", "link", "set", nsIf, "netns", nsName)
	for _, cmd := range [][]string{
		{"sysctl", "-qw", "net.ipv6.conf." + hostIf + ".disable_ipv6=1"},
		{"ip", "netns", "exec", nsName, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"ip", "addr", "add", hostAddr + "/30", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "-n", nsName, "addr", "add", nsAddr + "/30", "dev", nsIf},
		{"ip", "-n", nsName, "link", "set", nsIf, "up"},
		{"ip", "-n", nsName, "link", "set", "lo", "up"},
	} {
		run(t, cmd[0], cmd[1:]...)
	}
	return &netns{t: t}
}

// cut drops every packet between the namespace and the host, silently, as
// a partition does: the host side of the link goes down, so the worker's
// packets go nowhere and nothing answers them. The host's own processes
// still reach the host-side address.
func (n *netns) cut()  { run(n.t, "ip", "link", "set", hostIf, "down") }
func (n *netns) heal() { run(n.t, "ip", "link", "set", hostIf, "up") }

// clusterBody is page i's body: 200 bytes to 4 KiB, different for each page.
func clusterBody(i int) []byte {
	size := 200 + (i*7919)%3900
	line := fmt.Sprintf("page %d of the cluster site;", i)
	return []byte(strings.Repeat(line, size/len(line)+1)[:size])
}

func clusterSite(t *testing.T) string {
	l, err := net.Listen("tcp", hostAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/p/"))
		if err != nil || i < 0 {
			http.NotFound(w, r)
			return
		}
		time.Sleep(5 * time.Millisecond)
		_, _ = w.Write(clusterBody(i))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

type clusterRig struct {
	t         *testing.T
	bins      string
	pg        *postgres
	net       *netns
	server    *proc
	ui        *proc
	fetchA    *proc // on the host; SIGKILLed mid-batch
	fetchB    *proc // in the namespace; cut off mid-batch
	cpu1      *proc
	cpu2      *proc
	frontend  string // host:port of the frontend (gRPC)
	httpAPI   string // base URL of the frontend's HTTP API
	uiURL     string
	blobDir   string   // the workers' shared directory, without s3
	s3        *s3Blobs // or their bucket, with no disk shared
	metrics   map[*proc]string
	tmpDirs   map[*proc]string // each worker's TMPDIR, with s3
	workerEnv []string
	client    client.Client
}

func (c *clusterRig) probe(path string) int {
	resp, err := http.Get(c.httpAPI + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitServer waits for the frontend to answer for its system namespace.
func (c *clusterRig) waitServer() {
	c.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for c.probe("/api/v1/namespaces/temporal-system") != http.StatusOK {
		if time.Now().After(deadline) || c.server.exited() {
			c.t.Fatalf("the Temporal server did not come up:\n%s", tail(c.server.out))
		}
		time.Sleep(200 * time.Millisecond) // a separate process: its HTTP API is what tells
	}
}

func (c *clusterRig) progress(id string) workflows.Progress {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var p workflows.Progress
	if v, err := c.client.QueryWorkflow(ctx, id, "", workflows.ProgressQuery); err == nil {
		_ = v.Get(&p)
	}
	return p
}

// waitDone waits until the batch has done n URLs.
func (c *clusterRig) waitDone(id string, n int) workflows.Progress {
	c.t.Helper()
	deadline := c.deadline()
	for {
		p := c.progress(id)
		if p.Done >= n {
			if p.Total > 0 && p.Done == p.Total {
				c.t.Fatalf("the batch finished before the fault: %+v", p)
			}
			return p
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the batch never reached %d URLs done: %+v", n, p)
		}
		time.Sleep(250 * time.Millisecond) // polling the progress query
	}
}

// deadline leaves a minute of the test's time for the cleanup (its
// PostgreSQL cluster, network namespace and processes).
func (c *clusterRig) deadline() time.Time {
	d := time.Now().Add(20 * time.Minute)
	if td, ok := c.t.Deadline(); ok && td.Add(-time.Minute).Before(d) {
		d = td.Add(-time.Minute)
	}
	return d
}

func (c *clusterRig) scrape(p *proc, what string) float64 {
	return promtext.Scrape(c.t, "http://"+c.metrics[p]+"/metrics")[what]
}

// clusterStore is where a rig's workers keep bodies and results.
type clusterStore int

const (
	sharedDir clusterStore = iota // one directory, every worker's
	s3Bucket                      // a bucket on an S3 server; each worker a TMPDIR of its own
)

func newClusterRig(t *testing.T, store clusterStore) *clusterRig {
	if os.Geteuid() != 0 {
		t.Fatal("the cluster test needs root: it runs a PostgreSQL cluster and a network namespace of its own")
	}
	// One cluster test at a time on a machine: the namespace and its
	// addresses are fixed.
	lock, err := os.OpenFile("/run/lock/batchfetch-cluster-test.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	bins, err := clusterBins()
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterRig{t: t, bins: bins, blobDir: filepath.Join(t.TempDir(), "blobs"), metrics: map[*proc]string{}, tmpDirs: map[*proc]string{}}
	c.pg = startPostgres(t)

	// The schema, by the script the compose file's admin-tools job runs;
	// twice, as every `docker compose up` runs it.
	schemaDir := strings.TrimSpace(run(t, "go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/server")) + "/schema"
	for range 2 {
		setup := exec.Command("sh", "../../deploy/scripts/setup-postgres.sh")
		setup.Env = append(os.Environ(), "PATH="+bins+":"+os.Getenv("PATH"), "SQL_HOST=127.0.0.1", "SQL_PORT="+strconv.Itoa(c.pg.port),
			"SQL_USER=temporal", "SQL_PASSWORD=temporal", "SCHEMA_DIR="+schemaDir)
		if out, err := setup.CombinedOutput(); err != nil || !strings.Contains(string(out), "schema ready") {
			t.Fatalf("setup-postgres.sh: %v\n%s", err, out)
		}
	}

	c.net = newNetns(t)
	if store == s3Bucket {
		c.s3 = newS3Blobs(t)
	}
	base := lowPorts(t, 9)
	c.frontend = fmt.Sprintf("%s:%d", hostAddr, base)
	c.httpAPI = fmt.Sprintf("http://%s:%d", hostAddr, base+1)
	// The environment of the temporalio/server image, as docker-compose.yml
	// sets it, but on the test's ports and addresses.
	serverEnv := []string{
		"DB=postgres12", "DB_PORT=" + strconv.Itoa(c.pg.port), "POSTGRES_SEEDS=127.0.0.1",
		"POSTGRES_USER=temporal", "POSTGRES_PWD=temporal",
		"NUM_HISTORY_SHARDS=" + composeEnv(t)["NUM_HISTORY_SHARDS"],
		"DYNAMIC_CONFIG_FILE_PATH=" + mustAbs(t, "../../deploy/dynamicconfig/batchfetch.yaml"),
		"BIND_ON_IP=" + hostAddr, "TEMPORAL_ALLOW_NO_AUTH=true", "LOG_LEVEL=warn",
		fmt.Sprintf("FRONTEND_GRPC_PORT=%d", base), fmt.Sprintf("FRONTEND_HTTP_PORT=%d", base+1),
		fmt.Sprintf("HISTORY_GRPC_PORT=%d", base+2), fmt.Sprintf("MATCHING_GRPC_PORT=%d", base+3),
		fmt.Sprintf("WORKER_GRPC_PORT=%d", base+4), fmt.Sprintf("FRONTEND_MEMBERSHIP_PORT=%d", base+5),
		fmt.Sprintf("HISTORY_MEMBERSHIP_PORT=%d", base+6), fmt.Sprintf("MATCHING_MEMBERSHIP_PORT=%d", base+7),
		fmt.Sprintf("WORKER_MEMBERSHIP_PORT=%d", base+8),
	}
	c.server = &proc{t: t, name: "temporal-server", path: filepath.Join(bins, "temporal-server"), args: []string{"start"}, env: serverEnv}

	// The workers start first, before the server exists: they wait for it.
	c.workerEnv = []string{"TEMPORAL_ADDRESS=" + c.frontend, "TEMPORAL_NAMESPACE=default"}
	// s3Endpoint: how the worker reaches the S3 server (see s3Blobs).
	worker := func(role, listen, s3Endpoint string, wrap ...string) *proc {
		addr := fmt.Sprintf("%s:%d", listen, freeport.Run(t, 1))
		storeArgs, env := c.storeFlags(s3Endpoint)
		args := append([]string{"--role", role, "--metrics-listen", addr, "--log-format", "json"}, storeArgs...)
		if role == "fetch" {
			args = append(args, "--allow", hostAddr)
		}
		tmp := ""
		if c.s3 != nil {
			tmp = t.TempDir()
			env = append(env, "TMPDIR="+tmp)
		}
		p := &proc{t: t, name: "worker", wrap: wrap, env: append(env, c.workerEnv...), args: args}
		c.metrics[p] = addr
		c.tmpDirs[p] = tmp
		p.start()
		return p
	}
	c.fetchA = worker("fetch", "127.0.0.1", "")
	c.fetchB = worker("fetch", nsAddr, c.s3.nsEndpoint(), "ip", "netns", "exec", nsName)
	c.cpu1 = worker("cpu", "127.0.0.1", c.s3.cpu1Endpoint())
	c.cpu2 = worker("cpu", "127.0.0.1", "")
	t.Cleanup(func() {
		for _, p := range []*proc{c.fetchA, c.fetchB, c.cpu1, c.cpu2, c.ui, c.server} {
			if p != nil {
				p.stop()
			}
		}
		if t.Failed() {
			for name, p := range map[string]*proc{"fetch A": c.fetchA, "fetch B": c.fetchB, "cpu 1": c.cpu1, "cpu 2": c.cpu2, "server": c.server, "ui": c.ui} {
				if p != nil {
					t.Logf("%s:\n%s", name, tail(p.out))
				}
			}
		}
	})
	for _, p := range []*proc{c.fetchA, c.fetchB, c.cpu1, c.cpu2} {
		waitOutput(t, p, "waiting for Temporal")
	}

	c.server.start()
	c.waitServer()
	// The compose health check asks the HTTP API for the namespace: no
	// answer until the namespace job has run.
	if got := c.probe("/api/v1/namespaces/default"); got != http.StatusNotFound {
		t.Fatalf("before the namespace exists, the health probe got %d, want 404", got)
	}
	c.client, err = client.Dial(client.Options{HostPort: c.frontend, Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.client.Close)
	if _, err := c.client.WorkflowService().RegisterNamespace(context.Background(), &workflowservice.RegisterNamespaceRequest{
		Namespace: "default", WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// As compose's namespace job does: the counts in the Web UI's list.
	registering := time.Now()
	for err := workers.RegisterSearchAttributes(context.Background(), c.client, "default"); err != nil; err = workers.RegisterSearchAttributes(context.Background(), c.client, "default") {
		if time.Since(registering) > time.Minute {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // a new namespace reaches the frontend's cache
	}
	if got := c.probe("/api/v1/namespaces/default"); got != http.StatusOK {
		t.Fatalf("with the namespace, the health probe got %d, want 200", got)
	}
	for _, p := range []*proc{c.fetchA, c.fetchB, c.cpu1, c.cpu2} {
		waitOutput(t, p, "connected to Temporal")
	}

	// The Web UI, from the ui-server module at go.mod's version, configured
	// by environment as the temporalio/ui image is.
	// Its config template is the module's own, with the listening address
	// added (the template has none, so it would listen on every interface).
	uiMod := strings.TrimSpace(run(t, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/temporalio/ui-server/v2"))
	uiRoot := t.TempDir()
	run(t, "cp", "-r", filepath.Join(uiMod, "config"), uiRoot)
	run(t, "chmod", "-R", "u+w", uiRoot)
	f, err := os.OpenFile(filepath.Join(uiRoot, "config", "docker.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("\nhost: 127.0.0.1\n")
	f.Close()
	uiPort := freeport.Run(t, 1)
	c.uiURL = fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	c.ui = &proc{t: t, name: "ui-server", path: filepath.Join(bins, "ui-server"), args: []string{"--root", uiRoot, "--env", "docker", "start"},
		env: []string{"TEMPORAL_ADDRESS=" + c.frontend, "TEMPORAL_UI_PORT=" + strconv.Itoa(uiPort),
			"TEMPORAL_CSRF_COOKIE_INSECURE=true", "TEMPORAL_DISABLE_NEWS_FETCH=true"}}
	c.ui.start()
	return c
}

// lowPorts finds n free consecutive ports below 32768: the server keeps
// its membership ports in a smallint column, and the system hands out
// ports above that.
func lowPorts(t *testing.T, n int) int {
	for base := 20000 + os.Getpid()%1000*10; base+n < 32768; base += n {
		free := true
		for p := base; free && p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", hostAddr, p))
			if free = err == nil; free {
				l.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatal("no free ports below 32768")
	return 0
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// composeEnv reads the compose file's .env, so the test runs the settings
// the compose file ships.
func composeEnv(t *testing.T) map[string]string {
	f, err := os.Open("../../.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			env[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return env
}

// storeFlags is the blob store flags of a worker or the starter, and
// what its environment needs for them: the shared directory, or the
// bucket reached at s3Endpoint ("": the S3 server's own address) with the
// server's credentials.
func (c *clusterRig) storeFlags(s3Endpoint string) (args, env []string) {
	if c.s3 == nil {
		return []string{"--blob-dir", c.blobDir}, nil
	}
	return []string{"--blob-url", c.s3.srv.URL(s3test.Bucket, s3Endpoint)}, c.s3.srv.Env()
}

// starter runs the starter binary against the cluster, with what the
// blob store needs in its environment.
func (c *clusterRig) starter(args ...string) string {
	c.t.Helper()
	_, env := c.storeFlags("")
	cmd := exec.Command(filepath.Join(c.bins, "starter"), args...)
	cmd.Env = append(append(os.Environ(), env...), c.workerEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("starter %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startBatch starts a batch of pages first..first+n-1 with the starter.
func (c *clusterRig) startBatch(id, site string, first, n int) {
	c.t.Helper()
	f := filepath.Join(c.t.TempDir(), id+".txt")
	var b strings.Builder
	for i := first; i < first+n; i++ {
		fmt.Fprintf(&b, "%s/p/%d\n", site, i)
	}
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	storeArgs, _ := c.storeFlags("")
	c.starter(append([]string{"start", "--file", f, "--id", id, "--no-wait"}, storeArgs...)...)
}

// searchCounts reads a batch's BatchFetchOK, BatchFetchFailed and
// BatchFetchTotal, as the Web UI's list shows them.
func (c *clusterRig) searchCounts(ctx context.Context, id string) (counts [3]int64) {
	c.t.Helper()
	d, err := c.client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		c.t.Fatalf("%s: %v", id, err)
	}
	fields := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	for i, name := range []string{workflows.AttrOK, workflows.AttrFailed, workflows.AttrTotal} {
		if p, ok := fields[name]; !ok {
			counts[i] = -1
		} else if err := converter.GetDefaultDataConverter().FromPayload(p, &counts[i]); err != nil {
			c.t.Fatalf("%s: %s: %v", id, name, err)
		}
	}
	return counts
}

// checkBatch waits for the batch and checks every URL once, in order, ok,
// with the sha256 of what the site sent. It returns the batch's output.
func (c *clusterRig) checkBatch(id, site string, first, n int) workflows.Output {
	c.t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), c.deadline())
	defer cancel()
	var out workflows.Output
	if err := c.client.GetWorkflow(ctx, id, "").Get(ctx, &out); err != nil {
		c.t.Fatalf("%s: %v", id, err)
	}
	if out.Total != n || out.OK != n || out.Failed != 0 {
		c.t.Errorf("%s: total %d ok %d failed %d, want %d ok", id, out.Total, out.OK, out.Failed, n)
	}
	if got := c.searchCounts(ctx, id); got != [3]int64{int64(n), 0, int64(n)} {
		c.t.Errorf("%s: search attributes ok, failed, total %v, want %d, 0, %d", id, got, n, n)
	}
	results := out.Results
	if out.ResultsFile != "" {
		f := c.openResults(ctx, out.ResultsFile)
		defer f.Close()
		dec := json.NewDecoder(f)
		for {
			var r workflows.Result
			if err := dec.Decode(&r); err == io.EOF {
				break
			} else if err != nil {
				c.t.Fatal(err)
			}
			results = append(results, r)
		}
	}
	if len(results) != n {
		c.t.Fatalf("%s: %d results, want %d", id, len(results), n)
	}
	bad := 0
	for k, r := range results {
		i := first + k
		sum := sha256.Sum256(clusterBody(i))
		if r.URL != fmt.Sprintf("%s/p/%d", site, i) || r.Outcome != workflows.OutcomeOK || r.SHA256 != hex.EncodeToString(sum[:]) || r.Size != int64(len(clusterBody(i))) {
			if bad++; bad <= 5 {
				c.t.Errorf("%s: result %d is %+v", id, k, r)
			}
		}
	}
	if bad > 0 {
		c.t.Errorf("%s: %d of %d results wrong", id, bad, n)
	}
	return out
}

// openResults opens a batch's results file as a user does: from the
// shared directory, or with an S3 client from the bucket.
func (c *clusterRig) openResults(ctx context.Context, key string) io.ReadCloser {
	c.t.Helper()
	if c.s3 != nil {
		return c.s3.open(c.t, ctx, key)
	}
	f, err := os.Open(filepath.Join(c.blobDir, filepath.FromSlash(key)))
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// TestClusterOnPostgreSQL runs a 100,000-URL batch and three small ones on
// the production shape and, mid-batch, SIGKILLs a fetch worker, SIGKILLs
// and restarts the Temporal server, and cuts the other fetch worker off for
// 30 s; a batch of 20,000 starts as the link heals. Every URL must come
// back exactly once with the right sha256.
func TestClusterOnPostgreSQL(t *testing.T) {
	const big = 100_000
	c := newClusterRig(t, sharedDir)
	site := clusterSite(t)

	start := time.Now()
	c.startBatch("cluster-big", site, 0, big)
	for i := range 3 {
		c.startBatch(fmt.Sprintf("cluster-small-%d", i), site, big+i*100, 50)
	}

	c.waitDone("cluster-big", big/10)
	fetchedByA := c.scrape(c.fetchA, "batchfetch_fetch_bytes_total")
	t.Logf("%s: SIGKILL fetch worker A (it had fetched %.0f bytes)", time.Since(start).Round(time.Second), fetchedByA)
	c.fetchA.kill()
	c.fetchA.start()

	c.waitDone("cluster-big", big*3/10)
	t.Logf("%s: SIGKILL the Temporal server", time.Since(start).Round(time.Second))
	c.server.kill()
	c.server.start()
	c.waitServer()
	t.Logf("%s: the Temporal server is back", time.Since(start).Round(time.Second))

	before := c.waitDone("cluster-big", big/2)
	fetchedByB := c.scrape(c.fetchB, "batchfetch_fetch_bytes_total")
	t.Logf("%s: cut fetch worker B off for 30 s (%d URLs done; B had fetched %.0f bytes)", time.Since(start).Round(time.Second), before.Done, fetchedByB)
	c.net.cut()
	time.Sleep(30 * time.Second) // the partition's length, which is the scenario
	during := c.progress("cluster-big")
	c.net.heal()
	healed := time.Now()
	// More work after the heal, so the cut-off worker has some to come
	// back to: its connections wait out TCP's retransmission backoff,
	// up to tens of seconds after 30 s of silence.
	c.startBatch("cluster-after", site, big+1000, 20_000)
	t.Logf("%s: healed (%d URLs done while B was cut off)", time.Since(start).Round(time.Second), during.Done-before.Done)
	if during.Done <= before.Done {
		t.Errorf("no progress while one fetch worker was cut off: %d then %d", before.Done, during.Done)
	}

	c.checkBatch("cluster-big", site, 0, big)
	wall := time.Since(start)
	t.Logf("%s: the batch finished, %s after the partition healed", wall.Round(time.Second), time.Since(healed).Round(time.Second))
	for i := range 3 {
		c.checkBatch(fmt.Sprintf("cluster-small-%d", i), site, big+i*100, 50)
	}
	c.checkBatch("cluster-after", site, big+1000, 20_000)

	// Every worker of each role did work.
	if fetchedByA <= 0 {
		t.Error("fetch worker A fetched nothing before it was killed")
	}
	b := c.scrape(c.fetchB, "batchfetch_fetch_bytes_total")
	// B's connections may still be in TCP's retransmission backoff when
	// A has finished the work after the heal: more batches, until B
	// takes some (or a minute and a half has passed).
	for k := 0; b <= fetchedByB && time.Since(healed) < 90*time.Second; k++ {
		id := fmt.Sprintf("cluster-more-%d", k)
		c.startBatch(id, site, big+30_000+k*5_000, 5_000)
		c.checkBatch(id, site, big+30_000+k*5_000, 5_000)
		b = c.scrape(c.fetchB, "batchfetch_fetch_bytes_total")
	}
	t.Logf("fetch worker B fetched %.0f bytes in all, %.0f after the partition healed", b, b-fetchedByB)
	if b <= fetchedByB {
		// A worker that never came back would leave the batch to A.
		t.Error("fetch worker B did no work after the partition healed")
	}
	if a := c.scrape(c.fetchA, "batchfetch_fetch_bytes_total"); a <= 0 {
		t.Error("fetch worker A fetched nothing after its restart")
	}
	for name, p := range map[string]*proc{"cpu 1": c.cpu1, "cpu 2": c.cpu2} {
		if h := c.scrape(p, "batchfetch_hash_bytes_total"); h <= 0 {
			t.Errorf("CPU worker %s hashed nothing", name)
		}
	}

	// No body left in the blob store; the results files stay.
	left := leftBlobs(c.blobDir)
	if len(left) > 0 {
		t.Errorf("%d blobs left behind, e.g. %s", len(left), left[0])
	}

	// The Web UI shows the batch, read through its own API as the browser does.
	resp, err := http.Get(c.uiURL + "/api/v1/namespaces/default/workflows/cluster-big")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "WORKFLOW_EXECUTION_STATUS_COMPLETED") {
		t.Errorf("the Web UI's API for the batch: %s\n%.500s", resp.Status, body)
	}

	dbSize := c.pg.size(t)
	pgCPU := c.pg.cpu(t)
	for _, p := range []*proc{c.fetchA, c.fetchB, c.cpu1, c.cpu2, c.ui, c.server} {
		p.stop()
	}
	t.Logf("figures: %d URLs (+150, and 20,000 started after the heal) in %s wall; CPU seconds: fetch workers %.0f (A %.0f, B %.0f), CPU workers %.0f, Temporal server %.0f, PostgreSQL %.0f, Web UI %.1f; databases %.0f MiB",
		big, wall.Round(time.Second),
		(c.fetchA.cpuTime() + c.fetchB.cpuTime()).Seconds(), c.fetchA.cpuTime().Seconds(), c.fetchB.cpuTime().Seconds(),
		(c.cpu1.cpuTime() + c.cpu2.cpuTime()).Seconds(), c.server.cpuTime().Seconds(), pgCPU.Seconds(), c.ui.cpuTime().Seconds(), float64(dbSize)/(1<<20))
}
