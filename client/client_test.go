package client_test

// These tests run batches on the embedded Temporal server, with the
// workers in the test process and a web server on 127.0.0.1.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/workflows"
)

var (
	stack *devstack.Stack
	site  *httptest.Server
	hits  atomic.Int64
	// slowArrived receives once for each request to /slow.
	slowArrived = make(chan struct{}, 16)
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	var err error
	if stack, err = devstack.Start(context.Background(), devstack.Config{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stack.Stop()
	site = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/missing":
			http.NotFound(w, r)
		case "/slow":
			slowArrived <- struct{}{}
			<-r.Context().Done()
		default:
			if v := r.Header.Get("X-Own"); v != "" {
				_, _ = io.WriteString(w, v+" ")
			}
			_, _ = io.WriteString(w, "page "+r.URL.Path)
		}
	}))
	defer site.Close()
	return m.Run()
}

func newClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Temporal: stack.Client, Store: stack.Store})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestStartProgressWaitResults(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	urls := []string{site.URL + "/a", site.URL + "/missing", site.URL + "/b"}
	b, err := c.Start(ctx, workflows.Input{URLs: urls, MaxAttempts: 1}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Progress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 3 {
		t.Errorf("progress total = %d, want 3 (%+v)", p.Total, p)
	}
	out, err := b.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.OK != 2 || out.Failed != 1 || out.Total != 3 || out.ResultsFile != "" {
		t.Errorf("output = %d ok, %d failed of %d, file %q; want 2, 1 of 3 inline", out.OK, out.Failed, out.Total, out.ResultsFile)
	}
	if p, err = b.Progress(ctx); err != nil || p.Done != 3 || p.OK != 2 {
		t.Errorf("progress after the end = %+v, %v; want 3 done, 2 ok", p, err)
	}
	var got []workflows.Result
	for r, err := range b.Results(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != 3 {
		t.Fatalf("%d results, want 3", len(got))
	}
	for i, r := range got {
		if r.URL != urls[i] {
			t.Errorf("result %d is %s, want %s (input order)", i, r.URL, urls[i])
		}
	}
	if got[0].Outcome != workflows.OutcomeOK || got[0].SHA256 != sum("page /a") {
		t.Errorf("result 0 = %+v, want ok with the sha256 of its page", got[0])
	}
	if got[1].Outcome != workflows.OutcomeHTTPError || got[1].Status != 404 {
		t.Errorf("result 1 = %+v, want http_error 404", got[1])
	}
}

func TestSameIDAttaches(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	id := "client-test-same-id"
	in := workflows.Input{URLs: []string{site.URL + "/same-1", site.URL + "/same-2"}}
	b, err := c.Start(ctx, in, client.StartOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	first, err := b.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := hits.Load()
	again, err := c.Start(ctx, in, client.StartOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if again.RunID() != b.RunID() {
		t.Errorf("a second start of %s has run %s, want the first's %s", id, again.RunID(), b.RunID())
	}
	attached, err := c.Attach(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := attached.Wait(ctx)
	if err != nil || out.OK != first.OK || out.Total != 2 {
		t.Errorf("attached output = %+v, %v; want the first's (%d ok of 2)", out, err, first.OK)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("the second start fetched %d times: the same ID must never fetch twice", n)
	}
	var notFound *serviceerror.NotFound
	if _, err := c.Attach(ctx, "client-test-no-such-batch"); !errors.As(err, &notFound) {
		t.Errorf("Attach of an unknown ID = %v, want a *serviceerror.NotFound", err)
	}
}

func TestLargeListAndResultsFile(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	id := "client-test-large"
	urls := make([]string, workflows.InlineLimit+1)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/large/%d", site.URL, i)
	}
	// The first URL is asked for its own way: a JSON line of the list.
	own := make([]*activities.RequestFields, len(urls))
	own[0] = &activities.RequestFields{Headers: map[string]activities.HeaderValue{"X-Own": {Value: "own"}}}
	b, err := c.Start(ctx, workflows.Input{URLs: urls, URLRequests: own, MaxInFlight: 200}, client.StartOptions{ID: id})
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.ResultsFile == "" || out.Results != nil || out.OK != len(urls) {
		t.Fatalf("output = %d ok of %d, file %q, %d inline; want all ok, in a results file", out.OK, out.Total, out.ResultsFile, len(out.Results))
	}
	n := 0
	for r, err := range b.Results(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		page := fmt.Sprintf("page /large/%d", n)
		if n == 0 {
			page = "own " + page
		}
		if r.URL != urls[n] || r.Outcome != workflows.OutcomeOK || r.SHA256 != sum(page) {
			t.Fatalf("result %d = %+v, want %s ok with its page's sha256", n, r, urls[n])
		}
		n++
	}
	if n != len(urls) {
		t.Errorf("%d results, want %d", n, len(urls))
	}
	// Stopping early is allowed (the file is closed).
	for _, err := range b.Results(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	// The uploaded list belonged to the batch: it is gone.
	left, _ := filepath.Glob(filepath.Join(stack.BlobDir(), "inputs", id+"-*"))
	if len(left) != 0 {
		t.Errorf("the uploaded URL list is still in the blob store: %v", left)
	}
}

func TestKeptBody(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	b, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/kept", site.URL + "/missing"}, KeepBodies: true, MaxAttempts: 1}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r, err := range b.Results(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		body, err := b.Body(ctx, r)
		if r.Outcome != workflows.OutcomeOK {
			if !errors.Is(err, client.ErrNoBody) {
				t.Errorf("Body of a %s result = %v, want ErrNoBody", r.Outcome, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(data))
		if !strings.HasPrefix(r.BodyKey, "bodies/sha256/") {
			t.Errorf("body_key = %q", r.BodyKey)
		}
	}
	if len(got) != 1 || got[0] != "page /kept" {
		t.Errorf("kept bodies = %q, want [\"page /kept\"]", got)
	}
	// A body that is not the one its result names ends in an error.
	var kept workflows.Result
	for r, err := range b.Results(ctx) {
		if err == nil && r.Outcome == workflows.OutcomeOK {
			kept = r
		}
	}
	kept.SHA256 = sum("another page")
	body, err := b.Body(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if _, err := io.ReadAll(body); err == nil || !strings.Contains(err.Error(), "its result says") {
		t.Errorf("reading a body its result does not name = %v, want an error saying so", err)
	}
}

func TestLargeListNeedsStore(t *testing.T) {
	c, err := client.New(client.Options{Temporal: stack.Client})
	if err != nil {
		t.Fatal(err)
	}
	urls := make([]string, workflows.InlineLimit+1)
	for i := range urls {
		urls[i] = site.URL + "/x"
	}
	if _, err := c.Start(testCtx(t), workflows.Input{URLs: urls}, client.StartOptions{}); err == nil || !strings.Contains(err.Error(), "Options.Store") {
		t.Errorf("Start of %d URLs without a store = %v, want an error naming Options.Store", len(urls), err)
	}
}

func TestCancel(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	urls := []string{site.URL + "/before-cancel", site.URL + "/slow"}
	b, err := c.Start(ctx, workflows.Input{URLs: urls, AttemptTimeout: "2m"}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-slowArrived:
	case <-ctx.Done():
		t.Fatal("the slow page was never asked for")
	}
	// The other URL is done (fetched and hashed) before the cancel.
	for {
		p, err := b.Progress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.OK == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the fast page never finished: %+v", p)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := b.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.Wait(ctx)
	var canceled *client.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("Wait after Cancel = %v, want a *CanceledError", err)
	}
	if canceled.Output == nil || canceled.Output.Total != 2 || canceled.Output.Canceled != 1 {
		t.Fatalf("canceled output = %+v, want 2 URLs, 1 canceled", canceled.Output)
	}
	var outcomes []string
	var last error
	for r, err := range b.Results(ctx) {
		if err != nil {
			last = err
			continue
		}
		outcomes = append(outcomes, r.Outcome)
	}
	if strings.Join(outcomes, ",") != "ok,canceled" || !errors.As(last, &canceled) {
		t.Errorf("results of the canceled batch = %v then %v, want ok,canceled then the *CanceledError", outcomes, last)
	}
}

func TestFailFastStopped(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	b, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/missing"}, Mode: workflows.ModeFailFast}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Wait(ctx)
	var failed *client.BatchFailedError
	if !errors.As(err, &failed) {
		t.Fatalf("Wait = %v, want a *BatchFailedError", err)
	}
	if failed.Output == nil || failed.Output.Total != 1 || failed.Output.Failed != 1 {
		t.Errorf("partial output = %+v, want 1 URL, failed", failed.Output)
	}
	if !strings.Contains(err.Error(), site.URL+"/missing") || !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q does not name the URL and its status", err)
	}
}

func TestInvalidInput(t *testing.T) {
	ctx := testCtx(t)
	c := newClient(t)
	// Refused before anything starts.
	_, err := c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/a", "ftp://example.com/x"}}, client.StartOptions{})
	var invalid *client.InvalidInputError
	if !errors.As(err, &invalid) || invalid.Field != "urls[1]" {
		t.Fatalf("Start of an ftp URL = %v, want an *InvalidInputError naming urls[1]", err)
	}
	_, err = c.Start(ctx, workflows.Input{URLs: []string{site.URL + "/a"}, MaxInFlight: -1}, client.StartOptions{})
	if !errors.As(err, &invalid) || invalid.Field != "max_in_flight" {
		t.Errorf("Start with max_in_flight -1 = %v, want an *InvalidInputError naming max_in_flight", err)
	}
	// Refused by the workflow: a bad line of a urls_file.
	w, err := stack.Store.Create(ctx, "inputs/client-test-bad.txt")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "%s/a\nftp://example.com/x\n", site.URL)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	before := hits.Load()
	b, err := c.Start(ctx, workflows.Input{URLsFile: "inputs/client-test-bad.txt", RemoveInputs: true}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Wait(ctx)
	if !errors.As(err, &invalid) || invalid.Field != "urls_file line 2" {
		t.Fatalf("Wait of a bad urls_file = %v, want an *InvalidInputError naming urls_file line 2", err)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("%d fetches of a refused batch, want none", n)
	}
	for _, err := range b.Results(ctx) {
		if !errors.As(err, &invalid) {
			t.Errorf("Results of a refused batch yield %v, want its *InvalidInputError", err)
		}
	}
}
