package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// heldClient is a Client whose batches go to a task queue no worker
// polls: they wait, their input files in the store.
func heldClient(t *testing.T, queue string) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Temporal: stack.Client, Store: stack.Store, TaskQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A request body and earlier results given as readers go to the blob
// store as the batch's own files; a batch terminated before it could
// remove them has them removed by Wait.
func TestBodyAndPreviousGoThroughTheStore(t *testing.T) {
	ctx := testCtx(t)
	id := fmt.Sprint("client-test-inputs-", time.Now().UnixNano())
	c := heldClient(t, "held-"+id)
	previous := fmt.Sprintf(`{"url":"%s/a","outcome":"ok","status":200}`+"\n", site.URL)
	b, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/a"}, RequestFields: activities.RequestFields{Method: "POST"}},
		client.StartOptions{ID: id, Body: strings.NewReader("the body"), Previous: strings.NewReader(previous)})
	if err != nil {
		t.Fatal(err)
	}
	if b.Attached() {
		t.Error("a started batch says it attached")
	}
	in, err := b.Input(ctx)
	if err != nil {
		t.Fatal(err)
	}
	files := b.InputFiles()
	if in.Body == nil || !in.RemoveInputs || len(files) != 2 || !strings.Contains(strings.Join(files, " "), in.Body.Key) || !strings.Contains(strings.Join(files, " "), in.PreviousFile) {
		t.Fatalf("input body %+v, previous_file %q, remove_inputs %v; input files %v", in.Body, in.PreviousFile, in.RemoveInputs, files)
	}
	for key, want := range map[string]string{in.Body.Key: "the body", in.PreviousFile: previous} {
		if got, err := os.ReadFile(filepath.Join(stack.BlobDir(), key)); err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v), want %q", key, got, err, want)
		}
	}
	d, err := b.Describe(ctx)
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("Describe of the waiting batch: %v, %v", d.GetWorkflowExecutionInfo().GetStatus(), err)
	}
	if err := stack.Client.TerminateWorkflow(ctx, b.ID(), b.RunID(), "test"); err != nil {
		t.Fatal(err)
	}
	var failed *client.BatchFailedError
	if _, err := b.Wait(ctx); !errors.As(err, &failed) || failed.Output != nil {
		t.Fatalf("Wait of a terminated batch = %v, want a *BatchFailedError without output", err)
	}
	for _, key := range files {
		if _, err := os.Stat(filepath.Join(stack.BlobDir(), key)); !os.IsNotExist(err) {
			t.Errorf("%s is left after the batch ended: %v", key, err)
		}
	}
}

// A second start of a running batch's ID attaches to it and removes the
// list it uploaded: the batch reads its own.
func TestAStartThatAttachesRemovesItsUploads(t *testing.T) {
	ctx := testCtx(t)
	id := fmt.Sprint("client-test-race-", time.Now().UnixNano())
	c := heldClient(t, "held-"+id)
	var first *client.Batch
	for _, tag := range []string{"a", "b"} {
		urls := make([]string, workflows.InlineLimit+1)
		for i := range urls {
			urls[i] = fmt.Sprintf("%s/%s/%d", site.URL, tag, i)
		}
		b, err := c.Start(ctx, workflows.Input{URLs: urls}, client.StartOptions{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = b
			defer stack.Client.TerminateWorkflow(context.Background(), b.ID(), b.RunID(), "test") //nolint:errcheck
			continue
		}
		if !b.Attached() || b.RunID() != first.RunID() || len(b.InputFiles()) != 0 {
			t.Errorf("second start: attached %v, run %s (the first's %s), input files %v", b.Attached(), b.RunID(), first.RunID(), b.InputFiles())
		}
	}
	left, _ := filepath.Glob(filepath.Join(stack.BlobDir(), "inputs", id+"-*"))
	if len(left) != 1 || !strings.HasSuffix(left[0], filepath.Base(first.InputFiles()[0])) {
		t.Errorf("input files %v, want the first's list %v alone", left, first.InputFiles())
	}
}

// AttachRun finds one run; an unknown run, or a workflow that is no
// batch, is a *serviceerror.NotFound.
func TestAttachRun(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	b, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/run"}}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	again, err := c.AttachRun(ctx, b.ID(), b.RunID())
	if err != nil || again.RunID() != b.RunID() || !again.Attached() {
		t.Fatalf("AttachRun = %v, %v", again, err)
	}
	var notFound *serviceerror.NotFound
	if _, err := c.AttachRun(ctx, b.ID(), "01a22143-0c85-725e-88fa-218f77219cdb"); !errors.As(err, &notFound) {
		t.Errorf("AttachRun of an unknown run = %v, want a *serviceerror.NotFound", err)
	}
	other, err := stack.Client.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{TaskQueue: "client-test-nobody"}, "NotABatch")
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Client.TerminateWorkflow(context.Background(), other.GetID(), other.GetRunID(), "test") //nolint:errcheck
	if _, err := c.Attach(ctx, other.GetID()); !errors.As(err, &notFound) || !strings.Contains(err.Error(), "not a BatchFetch") {
		t.Errorf("Attach of a workflow that is no batch = %v, want a *serviceerror.NotFound saying so", err)
	}
}

// Results in another store than Options.Store are a *StoreMismatchError,
// said before any is read.
func TestResultsInAnotherStore(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	out := workflows.Output{ResultsFile: "results/elsewhere.jsonl", BlobStore: "another-store"}
	mine, err := blobstore.ID(ctx, stack.Store)
	if err != nil {
		t.Fatal(err)
	}
	var other *client.StoreMismatchError
	if err := c.CheckResultsStore(ctx, out); !errors.As(err, &other) || other.Workers != "another-store" || other.Mine != mine || other.File != out.ResultsFile {
		t.Errorf("CheckResultsStore = %v, want a *StoreMismatchError naming both stores", err)
	}
	for _, err := range c.Results(ctx, out) {
		if !errors.As(err, &other) {
			t.Errorf("Results yield %v, want the *StoreMismatchError", err)
		}
	}
	if err := c.CheckResultsStore(ctx, workflows.Output{Results: []workflows.Result{}}); err != nil {
		t.Errorf("CheckResultsStore of inline results = %v", err)
	}
}

// WriteList writes a list as a urls_file holds it: what ListInStore says
// goes to the blob store.
func TestWriteList(t *testing.T) {
	ctx := testCtx(t)
	in := workflows.Input{URLs: []string{site.URL + "/1", site.URL + "/2"}}
	if client.ListInStore(in) {
		t.Error("two URLs are said to go to the blob store")
	}
	key := fmt.Sprint("inputs/client-test-list-", time.Now().UnixNano(), ".txt")
	if err := client.WriteList(ctx, stack.Store, key, in); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(stack.BlobDir(), key)); err != nil || string(got) != in.URLs[0]+"\n"+in.URLs[1]+"\n" {
		t.Errorf("the list holds %q (%v)", got, err)
	}
}
