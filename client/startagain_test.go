package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// A second Start of an ID whose batch is running, or has ended, attaches
// to it and says so, also for a list small enough to go inline.
func TestStartAgainInlineSaysAttached(t *testing.T) {
	ctx := testCtx(t)
	id := fmt.Sprint("client-test-again-", time.Now().UnixNano())
	c := heldClient(t, "held-"+id)
	in := workflows.Input{URLs: []string{site.URL + "/again"}}
	first, err := c.Start(ctx, in, client.StartOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if first.Attached() {
		t.Error("the first start says it attached")
	}
	again, err := c.Start(ctx, in, client.StartOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Attached() || again.RunID() != first.RunID() {
		t.Errorf("a start of the running batch's ID: attached %v, run %s (the first's %s); want attached to the first", again.Attached(), again.RunID(), first.RunID())
	}
	if err := stack.Client.TerminateWorkflow(ctx, first.ID(), first.RunID(), "test"); err != nil {
		t.Fatal(err)
	}
	ended, err := c.Start(ctx, in, client.StartOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if !ended.Attached() || ended.RunID() != first.RunID() {
		t.Errorf("a start of the ended batch's ID: attached %v, run %s (the first's %s); want attached to the first", ended.Attached(), ended.RunID(), first.RunID())
	}
}

// Start on the ID of a workflow that is no batch starts nothing, returns
// no Batch on it, and leaves no upload behind.
func TestStartOnAWorkflowThatIsNoBatch(t *testing.T) {
	ctx := testCtx(t)
	id := fmt.Sprint("client-test-nobatch-", time.Now().UnixNano())
	other, err := stack.Client.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{ID: id, TaskQueue: "client-test-nobody"}, "NotABatch")
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Client.TerminateWorkflow(context.Background(), other.GetID(), other.GetRunID(), "test") //nolint:errcheck
	c := newClient(t)
	b, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/nobatch"}}, client.StartOptions{ID: id, Previous: strings.NewReader("")})
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Errorf("Start on a NotABatch workflow's ID = %v, %v; want a *serviceerror.NotFound", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(stack.BlobDir(), "inputs", id+"-*"))
	if len(left) != 0 {
		t.Errorf("uploads left: %v", left)
	}
}

func largeList(tag string, n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/%s/%d", site.URL, tag, i)
	}
	return urls
}

// A fail_fast batch of a list in the store that stops yields the results
// it had, then its *BatchFailedError.
func TestFailFastLargeResults(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	urls := largeList("ff", workflows.InlineLimit+1)
	urls[len(urls)-1] = site.URL + "/missing"
	b, err := c.Start(ctx, workflows.Input{URLs: urls, Mode: workflows.ModeFailFast, MaxAttempts: 1, MaxInFlight: 50}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, werr := b.Wait(ctx)
	var failed *client.BatchFailedError
	if !errors.As(werr, &failed) || failed.Output == nil {
		t.Fatalf("Wait = %v, want a *BatchFailedError with output", werr)
	}
	t.Logf("partial output: total %d ok %d failed %d canceled %d file %q inline %d", failed.Output.Total, failed.Output.OK, failed.Output.Failed, failed.Output.Canceled, failed.Output.ResultsFile, len(failed.Output.Results))
	n, last := 0, error(nil)
	for r, err := range b.Results(ctx) {
		if err != nil {
			last = err
			continue
		}
		if r.URL != urls[n] {
			t.Fatalf("result %d is %s, want %s", n, r.URL, urls[n])
		}
		n++
	}
	if n != len(urls) || !errors.As(last, &failed) {
		t.Errorf("%d results then %v; want %d then the *BatchFailedError", n, last, len(urls))
	}
}

// A canceled batch of a list in the store yields its results, then its
// *CanceledError.
func TestCanceledLargeResults(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	urls := largeList("cl", workflows.InlineLimit+1)
	urls[len(urls)-1] = site.URL + "/slow"
	b, err := c.Start(ctx, workflows.Input{URLs: urls, MaxInFlight: 50, AttemptTimeout: "2m"}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-slowArrived:
	case <-ctx.Done():
		t.Fatal("the slow page was never asked for")
	}
	if err := b.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	var canceled *client.CanceledError
	if _, err := b.Wait(ctx); !errors.As(err, &canceled) || canceled.Output == nil {
		t.Fatalf("Wait = %v, want a *CanceledError with output", err)
	}
	t.Logf("canceled output: total %d ok %d canceled %d file %q inline %d", canceled.Output.Total, canceled.Output.OK, canceled.Output.Canceled, canceled.Output.ResultsFile, len(canceled.Output.Results))
	n, last := 0, error(nil)
	for r, err := range b.Results(ctx) {
		if err != nil {
			last = err
			continue
		}
		if r.URL != urls[n] {
			t.Fatalf("result %d is %s, want %s", n, r.URL, urls[n])
		}
		n++
	}
	if n != len(urls) || !errors.As(last, &canceled) {
		t.Errorf("%d results then %v; want %d then the *CanceledError", n, last, len(urls))
	}
}

// countingStore is the devstack's store, counting the blobs open.
type countingStore struct {
	blobstore.Store
	open atomic.Int64
}

type countedReader struct {
	io.ReadCloser
	s      *countingStore
	closed atomic.Bool
}

func (r *countedReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.s.open.Add(-1)
	}
	return r.ReadCloser.Close()
}

func (s *countingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	return &countedReader{ReadCloser: rc, s: s}, nil
}

// A kept body changed in the store after the batch is an error at its
// end; a loop stopped early over a results file closes it.
func TestTamperedBodyAndEarlyStop(t *testing.T) {
	ctx := testCtx(t)
	store := &countingStore{Store: stack.Store}
	c, err := client.New(client.Options{Temporal: stack.Client, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprint("tamper-", time.Now().UnixNano())
	urls := largeList(tag, workflows.InlineLimit+1)
	b, err := c.Start(ctx, workflows.Input{URLs: urls, KeepBodies: true, MaxInFlight: 200}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var first workflows.Result
	for r, err := range b.Results(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		first = r
		break
	}
	if n := store.open.Load(); n != 0 {
		t.Errorf("%d blobs left open after a loop stopped at its first result", n)
	}
	path := filepath.Join(stack.BlobDir(), first.BodyKey)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the kept body of %+v: %v", first, err)
	}
	data[0] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	body, err := c.Body(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if _, err := io.ReadAll(body); err == nil || !strings.Contains(err.Error(), "its result says") {
		t.Errorf("reading a body changed in the store = %v, want an error naming its sha256", err)
	}
}

// A long workflow ID (the server takes up to 1000 bytes) is no reason a
// batch's input files cannot go to the store.
func TestLongIDUploads(t *testing.T) {
	ctx := testCtx(t)
	id := fmt.Sprint("client-test-long-", time.Now().UnixNano(), "-", strings.Repeat("x", 300))
	c := heldClient(t, "held-long")
	b, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/long"}}, client.StartOptions{ID: id, Previous: strings.NewReader("")})
	if err != nil {
		t.Fatalf("Start with an ID of %d bytes and earlier results: %v", len(id), err)
	}
	defer stack.Client.TerminateWorkflow(context.Background(), b.ID(), b.RunID(), "test") //nolint:errcheck
	if b.ID() != id || len(b.InputFiles()) != 1 {
		t.Errorf("batch %s, input files %v", b.ID(), b.InputFiles())
	}
}

// A start the server refuses leaves none of the files Start uploaded.
func TestRefusedStartRemovesItsUploads(t *testing.T) {
	ctx := testCtx(t)
	id := fmt.Sprint("client-test-refused-", time.Now().UnixNano())
	for name, opts := range map[string]client.StartOptions{
		"id":    {ID: id + "-" + strings.Repeat("i", 1100), Previous: strings.NewReader("")},
		"queue": {ID: id + "-queue", Previous: strings.NewReader("")},
	} {
		c := newClient(t)
		if name == "queue" {
			c = heldClient(t, strings.Repeat("q", 2000))
		}
		_, err := c.Start(ctx, workflows.Input{URLs: largeList("refused", workflows.InlineLimit+1)}, opts)
		if err == nil {
			t.Errorf("%s: a start the server should refuse started", name)
			continue
		}
		t.Logf("%s: %.200v", name, err)
		left, _ := filepath.Glob(filepath.Join(stack.BlobDir(), "inputs", opts.ID[:len(id)+2]+"*")) // a long ID is cut in its key
		if len(left) != 0 {
			t.Errorf("%s: uploads left after a refused start: %v", name, left)
		}
	}
}
