package crashtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// previousRelease is the last release before Worker Versioning: the
// rollout test builds its worker from git and upgrades from it. Move it
// forward with each release.
const previousRelease = "47c106789f31677c994a96b3b648540c9a68e2c8"

// buildRelease builds the worker of an earlier commit, from git.
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	if err := exec.Command("git", "-C", "../..", "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s is not in this clone (a shallow clone?): %v", commit, err)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", fmt.Sprintf("git -C ../.. archive %s | tar -x -C %s", commit, src))
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	exe := filepath.Join(t.TempDir(), "worker-"+commit[:7])
	build := exec.Command("go", "build", "-o", exe, "./worker")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the worker of %s: %v\n%s", commit, err, out)
	}
	return exe
}

// rolloutSite serves n small pages at 40 ms each, and a few of 300 KB:
// bodies of both kinds the fetch worker packs or stores alone.
func rolloutSite(t *testing.T, n int) (*httptest.Server, []page) {
	var pages []page
	for i := range n {
		body := []byte(fmt.Sprintf("page %d of the rollout site, %s", i, strings.Repeat("x", i%1500)))
		if i%97 == 0 {
			body = []byte(strings.Repeat(fmt.Sprintf("large page %d ", i), 300<<10/16))
		}
		pages = append(pages, page{fmt.Sprintf("/p/%d", i), body})
	}
	byPath := map[string][]byte{}
	for _, p := range pages {
		byPath[p.path] = p.body
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		select {
		case <-time.After(40 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, pages
}

// rollout is a dev server and a site, and the batches started on it.
type rollout struct {
	*cluster
	site    *httptest.Server
	pages   []page
	batches []client.WorkflowRun
	sizes   []int
}

func newRollout(t *testing.T) *rollout {
	c := newServer(t) // each test brings its own releases' workers
	site, pages := rolloutSite(t, 3000)
	return &rollout{cluster: c, site: site, pages: pages}
}

// worker starts a worker process of one release (exe; "" for today's
// build) with the role and flags given, on the cluster's server and blob
// directory, as an operator would: no build ID of the test's own.
func (r *rollout) worker(exe, role string, extra ...string) *proc {
	env := append(append([]string{}, r.fetch.env...), "BATCHFETCH_BUILD_ID=")
	args := []string{"--role", role, "--blob-dir", r.blobDir, "--log-level", "warn"}
	if role == "fetch" {
		args = append(args, "--allow", "127.0.0.1")
	}
	p := &proc{t: r.t, name: "worker", path: exe, env: env, args: append(args, extra...)}
	p.start()
	r.t.Cleanup(p.stop)
	return p
}

// buildID is the build ID `worker --version` says of exe, its first
// line ("" for today's build).
func buildID(t *testing.T, exe string, extra ...string) string {
	t.Helper()
	if exe == "" {
		exe = filepath.Join(bin, "worker")
	}
	cmd := exec.Command(exe, append([]string{"--version"}, extra...)...)
	cmd.Env = append(os.Environ(), "BATCHFETCH_BUILD_ID=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s --version: %v", exe, err)
	}
	first, _, _ := strings.Cut(string(out), "\n") // the build ID's line
	return strings.TrimSpace(first)
}

// start starts a batch of the first n pages: up to 100 run as one-URL
// activities, more are staged in chunks.
func (r *rollout) start(n int) {
	var urls []string
	for _, p := range r.pages[:n] {
		urls = append(urls, r.site.URL+p.path)
	}
	in := workflows.Input{URLs: urls, MaxInFlight: 10, AttemptTimeout: "1m"}
	run, err := r.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("%s-%d", r.t.Name(), len(r.batches)), TaskQueue: workflows.TaskQueue}, workflows.WorkflowName, in)
	if err != nil {
		r.t.Fatal(err)
	}
	r.batches = append(r.batches, run)
	r.sizes = append(r.sizes, n)
}

// checkAll waits for every batch: each URL exactly once, ok, with the
// sha256 and size of the page the site sent; and nothing left in the
// blob store but results files.
func (r *rollout) checkAll() {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	store, err := blobstore.NewDir(r.blobDir)
	if err != nil {
		t.Fatal(err)
	}
	for b, run := range r.batches {
		var out workflows.Output
		if err := run.Get(ctx, &out); err != nil {
			t.Errorf("batch %d (%d URLs): %v", b, r.sizes[b], err)
			continue
		}
		results := out.Results
		if out.ResultsFile != "" {
			results = readResults(t, store, out.ResultsFile)
		}
		wrong := 0
		for i, res := range results {
			sum := sha256.Sum256(r.pages[i].body)
			if res.URL != r.site.URL+r.pages[i].path || res.Outcome != workflows.OutcomeOK ||
				res.SHA256 != hex.EncodeToString(sum[:]) || res.Size != int64(len(r.pages[i].body)) {
				if wrong < 3 {
					t.Errorf("batch %d, URL %d: %s %s %s %d (%s), want ok with the site's sha256 and size %d", b, i, res.URL, res.Outcome, res.SHA256, res.Size, res.Error, len(r.pages[i].body))
				}
				wrong++
			}
		}
		if len(results) != r.sizes[b] || out.OK != r.sizes[b] || wrong > 0 {
			t.Errorf("batch %d: %d results, %d ok, %d wrong; want %d ok", b, len(results), out.OK, wrong, r.sizes[b])
		}
	}
	if left := leftBlobs(r.blobDir); len(left) > 0 {
		t.Errorf("%d blobs left behind, e.g. %s", len(left), left[0])
	}
}

func readResults(t *testing.T, store blobstore.Store, key string) []workflows.Result {
	t.Helper()
	rc, err := store.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []workflows.Result
	dec := json.NewDecoder(rc)
	for dec.More() {
		var r workflows.Result
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// setCurrent makes build the deployment's current version with the
// standard API (what `temporal worker deployment set-current-version`
// calls), once its workers poll both task queues.
func (r *rollout) setCurrent(build string) {
	r.t.Helper()
	h := r.client.WorkerDeploymentClient().GetHandle("batchfetch")
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := h.SetCurrentVersion(context.Background(), client.WorkerDeploymentSetCurrentVersionOptions{BuildID: build})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("set-current-version %s: %v", build, err)
		}
		time.Sleep(200 * time.Millisecond) // until its workers have polled
	}
}

// waitCurrent waits until build is the deployment's current version.
func (r *rollout) waitCurrent(build string) {
	r.t.Helper()
	h := r.client.WorkerDeploymentClient().GetHandle("batchfetch")
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := h.Describe(context.Background(), client.WorkerDeploymentDescribeOptions{})
		if cur := d.Info.RoutingConfig.CurrentVersion; err == nil && cur != nil && cur.BuildID == build {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s did not become current (%v)", build, err)
		}
		time.Sleep(200 * time.Millisecond) // polling the deployment's record
	}
}

// versionOf is the build a batch's workflow runs on, and whether it is
// still running.
func (r *rollout) versionOf(b int) (build string, running bool) {
	d, err := r.client.DescribeWorkflowExecution(context.Background(), r.batches[b].GetID(), "")
	if err != nil {
		r.t.Fatal(err)
	}
	info := d.GetWorkflowExecutionInfo()
	return info.GetVersioningInfo().GetDeploymentVersion().GetBuildId(), info.GetStatus() == 1 // RUNNING
}

// TestRollingUpgradeFromUnversioned: the workers of the last release
// before Worker Versioning run batches; today's workers start beside them
// with their default flags; the new version is made current with the
// standard API; more batches start; the old workers get SIGTERM without
// waiting for anything to drain; more batches start. Every batch, of
// one-URL activities or staged chunks, ends with every URL ok and every
// hash the site's, on today's build.
func TestRollingUpgradeFromUnversioned(t *testing.T) {
	old := buildRelease(t, previousRelease)
	r := newRollout(t)
	oldFetch, oldCPU := r.worker(old, "fetch"), r.worker(old, "cpu")
	r.start(60)
	r.start(3000)
	r.waitProgress(r.batches[1], 300)

	build := buildID(t, "")
	r.worker("", "fetch")
	r.worker("", "cpu")
	r.setCurrent(build)
	r.start(60)
	r.start(3000)
	oldFetch.stop() // SIGTERM, at once
	oldCPU.stop()
	_, movedOn := r.versionOf(1)
	r.start(60)
	r.start(3000)
	r.checkAll()
	for b := 1; b < len(r.batches); b++ {
		if got, _ := r.versionOf(b); got != build && (b > 1 || movedOn) {
			t.Errorf("batch %d ended on build %q, want today's %q", b, got, build)
		}
	}
	if !movedOn {
		t.Log("the first staged batch ended before the old workers stopped")
	}
}

// TestRollbackBetweenTwoBuilds: build b1 (made current as the first
// version of the deployment) runs batches; b2 starts beside it and is
// made current; more batches; then the rollback: b1 current again, and
// b2's workers stopped. Every batch ends right, the moved ones on b1.
func TestRollbackBetweenTwoBuilds(t *testing.T) {
	r := newRollout(t)
	r.worker("", "fetch", "--build-id", "b1")
	r.worker("", "cpu", "--build-id", "b1")
	r.waitCurrent("b1")
	r.start(3000)
	r.start(60)
	r.waitProgress(r.batches[0], 300)

	b2Fetch, b2CPU := r.worker("", "fetch", "--build-id", "b2"), r.worker("", "cpu", "--build-id", "b2")
	r.setCurrent("b2")
	r.start(3000)
	r.start(60)
	r.waitProgress(r.batches[2], 300)
	if got, _ := r.versionOf(2); got != "b2" {
		t.Errorf("a batch started after the switch runs on %q, want b2", got)
	}
	r.setCurrent("b1") // the rollback
	r.start(60)
	b2Fetch.stop()
	b2CPU.stop()
	r.checkAll()
	if got, _ := r.versionOf(2); got != "b1" {
		t.Errorf("after the rollback, batch 2 ended on %q, want b1", got)
	}
}
