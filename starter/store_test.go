package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/batchfetch/batchfetch/blobstore"
)

// The starter's --blob-dir defaults to the directory the worker and the
// dev stack use; BATCHFETCH_BLOB_DIR overrides it.
func TestBlobDirDefaultsAgree(t *testing.T) {
	t.Setenv("BATCHFETCH_BLOB_DIR", "")
	os.Unsetenv("BATCHFETCH_BLOB_DIR")
	o, _, _, err := parseStart([]string{"http://127.0.0.1/a"}, strings.NewReader(""), os.Stderr)
	if err != nil || o.blobDir != blobstore.DefaultDir() {
		t.Errorf("--blob-dir defaults to %q (%v), want blobstore.DefaultDir() %q", o.blobDir, err, blobstore.DefaultDir())
	}
	if o, _, _, _ = parseStart([]string{"--dev"}, strings.NewReader(""), os.Stderr); o.devBlobDir() != blobstore.DefaultDir() {
		t.Errorf("--dev keeps its blobs in %q, want blobstore.DefaultDir() %q", o.devBlobDir(), blobstore.DefaultDir())
	}
	if o, _, _, _ = parseStart([]string{"--dev", "--dev-db", "/x/dev.sqlite"}, strings.NewReader(""), os.Stderr); o.devBlobDir() != "" {
		t.Errorf("--dev --dev-db elsewhere keeps its blobs in %q, want beside the database", o.devBlobDir())
	}
	dir := t.TempDir()
	t.Setenv("BATCHFETCH_BLOB_DIR", dir)
	for _, args := range [][]string{{"http://127.0.0.1/a"}, {"--dev", "--dev-db", "/x/dev.sqlite"}} {
		o, _, _, err := parseStart(args, strings.NewReader(""), os.Stderr)
		if err != nil || o.blobDir != dir || o.dev && o.devBlobDir() != dir {
			t.Errorf("%q with BATCHFETCH_BLOB_DIR=%s: --blob-dir %q (%v)", args, dir, o.blobDir, err)
		}
	}
}

// A starter on another blob store than the workers' is refused before
// anything is uploaded or started when its batch goes through the store
// (a long list, --previous), with exit status 6 and the flag that names
// the workers' store; a batch that ran has its results read with it.
func TestAStarterOnAnotherStoreIsTold(t *testing.T) {
	var list strings.Builder
	for i := range 1001 {
		fmt.Fprintf(&list, "%s/p/%d\n", site.URL, i)
	}
	prev := filepath.Join(t.TempDir(), "previous.jsonl")
	if err := os.WriteFile(prev, []byte(`{"url":"`+site.URL+`/a","outcome":"ok","status":200}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"a long list", list.String(), []string{"--file", "-"}},
		{"--previous", "", []string{"--previous", prev, site.URL + "/a"}},
	} {
		id := fmt.Sprint("refused-", time.Now().UnixNano())
		r := starter(t, tc.stdin, nil, append([]string{"--blob-dir", elsewhere, "--quiet", "--id", id}, tc.args...)...)
		if r.code != exitStore || !strings.Contains(r.stderr, "run the starter with --blob-dir "+workersBlobDir) ||
			!strings.Contains(r.stderr, elsewhere) || !strings.Contains(r.stderr, "nothing was started") {
			t.Errorf("%s on another store: exit %d, want %d, stderr:\n%s", tc.name, r.code, exitStore, r.stderr)
		}
		if _, err := testStack.Client.DescribeWorkflowExecution(context.Background(), id, ""); !errors.As(err, new(*serviceerror.NotFound)) {
			t.Errorf("%s: workflow %s was started (%v)", tc.name, id, err)
		}
		listed, err := testStack.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: fmt.Sprintf("WorkflowId = %q", id)})
		if err != nil || len(listed.GetExecutions()) != 0 {
			t.Errorf("%s: workflows listed with ID %s: %v (%v)", tc.name, id, listed.GetExecutions(), err)
		}
	}
	_ = filepath.WalkDir(elsewhere, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != blobstore.IDKey {
			t.Errorf("uploaded to the starter's store although refused: %s", path)
		}
		return nil
	})
	id := fmt.Sprint("stores-", time.Now().UnixNano())
	r := starter(t, list.String(), nil, "--blob-dir", workersBlobDir, "--quiet", "--id", id, "--file", "-")
	if r.code != 0 || !strings.Contains(r.stderr, "batch workflow_id="+id) {
		t.Fatalf("on the workers' store: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	r = starter(t, "", nil, "results", "--blob-dir", elsewhere, id)
	if r.code != exitStore || !strings.Contains(r.stderr, "the batch ran (1001 ok, 0 failed of 1001)") ||
		!strings.Contains(r.stderr, "starter results --blob-dir DIR "+id) || !strings.Contains(r.stderr, elsewhere) {
		t.Errorf("results from another store: exit %d, want %d, stderr:\n%s", r.code, exitStore, r.stderr)
	}
}
