package workflows

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/statusline"
)

// An inline batch of 1,000 URLs whose server sends long reason phrases
// that JSON escapes six-fold, with the real activities: its output stays
// under Temporal's 2 MB.
func TestInlineOutputWithLongErrorsFits(t *testing.T) {
	base := statusline.Serve(t, "404 "+strings.Repeat("<", 3000))
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	dc := &sizes{DataConverter: converter.GetDefaultDataConverter()}
	env.SetDataConverter(dc)
	store, _ := blobstore.NewDir(t.TempDir())
	client, err := activities.NewHTTPClient(activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	env.RegisterActivity(&activities.Fetcher{Client: client, Store: store})
	env.RegisterActivity(&activities.Hasher{Store: store})
	env.RegisterWorkflowWithOptions(BatchFetchPart, workflow.RegisterOptions{Name: PartWorkflowName})
	env.SetTestTimeout(2 * time.Minute)
	urls := make([]string, InlineLimit)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/%d", base, i)
	}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: 64})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	_ = env.GetWorkflowResult(&out)
	p, _ := converter.GetDefaultDataConverter().ToPayload(out)
	t.Logf("%d results, failed %d, error of result 0: %d bytes; output payload %d bytes; largest payload %d (%s)",
		len(out.Results), out.Failed, len(out.Results[0].Error), p.Size(), dc.largest, dc.largestV)
	if out.Failed != InlineLimit || p.Size() > 2<<20 || dc.largest > 2<<20 {
		t.Errorf("%d failed; the output is %d bytes, the largest payload %d: want under Temporal's 2 MB", out.Failed, p.Size(), dc.largest)
	}
}

// A staged batch canceled while a chunk's hash is waiting (a hash attempt
// canceled with no details, as one canceled before it starts is): the
// chunk's URLs whose fetch had failed for good keep their word.
func TestStagedCancelBeforeHashKeepsFetchFailures(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterActivityWithOptions(func(ctx context.Context, req activities.HashChunkRequest) (*activities.HashChunkResult, error) {
		if req.Chunk == 0 {
			<-ctx.Done() // queued behind a busy CPU worker
			return nil, temporal.NewCanceledError()
		}
		return f.HashChunk(ctx, req)
	}, activity.RegisterOptions{Name: "HashChunk"})
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
	urls := largeURLs(InlineLimit + 1)
	urls[0] = "http://a.example/missing"
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls})
	err := env.GetWorkflowError()
	out, ok := CanceledOutput(err)
	if !ok {
		t.Fatalf("got %v", err)
	}
	t.Logf("canceled batch: ok %d failed %d; URL 0 (a 404): %+v", out.OK, out.Failed, f.assembled[0])
	if f.assembled[0].Outcome != OutcomeHTTPError {
		t.Errorf("URL 0 failed with a 404 before the cancel, reads %q", f.assembled[0].Outcome)
	}
}

// A body whose blob no longer matches what its fetch stored (a disk that
// flipped a bit after the fetch) is hashed again by later attempts, then
// reported as an error naming the mismatch: never ok.
func TestIntegrityMismatchEndsAsError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "the body the server sent "+r.URL.Path)
	}))
	defer srv.Close()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestWorkflowEnvironment()
	dir := t.TempDir()
	store, _ := blobstore.NewDir(dir)
	client, err := activities.NewHTTPClient(activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	env.RegisterActivity(&activities.Fetcher{Client: client, Store: store})
	h := &activities.Hasher{Store: store}
	attempts := 0
	env.RegisterActivityWithOptions(func(ctx context.Context, req activities.HashChunkRequest) (*activities.HashChunkResult, error) {
		attempts++
		if attempts == 1 {
			for _, it := range req.Items {
				if strings.HasSuffix(it.URL, "/flipped") {
					p := filepath.Join(dir, filepath.FromSlash(it.Blob))
					b, _ := os.ReadFile(p)
					b[0] ^= 1
					if err := os.WriteFile(p, b, 0o644); err != nil {
						return nil, err
					}
				}
			}
		}
		return h.HashChunk(ctx, req)
	}, activity.RegisterOptions{Name: "HashChunk"})
	env.SetTestTimeout(2 * time.Minute)
	env.ExecuteWorkflow(BatchFetch, Input{URLs: []string{srv.URL + "/flipped"}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	_ = env.GetWorkflowResult(&out)
	r := out.Results[0]
	if r.Outcome != OutcomeError || !strings.Contains(r.Error, "integrity check failed") || r.SHA256 != "" {
		t.Errorf("got %+v, want an error naming the integrity check", r)
	}
	if attempts != 3 {
		t.Errorf("the hash ran %d attempts, want 3 (two retried, the third reports)", attempts)
	}
}
