package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/statusline"
)

// The hash step's heartbeat of a staged chunk of 500 (the workflow's
// chunk size) of the longest URLs stays small: the checkpoint leaves the URLs (in the chunk's file)
// out.
func TestStagedHashHeartbeatStaysSmall(t *testing.T) {
	ctx := context.Background()
	dir, _ := blobstore.NewDir(t.TempDir())
	w, _ := dir.Create(ctx, URLsKey("batches/r", 0))
	body := randomBytes(9, 1<<20)
	crc := crc32.Checksum(body, castagnoli)
	var items []Fetched
	for i := range stagedChunk {
		base := fmt.Sprintf("http://127.0.0.1/%d?", i)
		fmt.Fprintln(w, base+strings.Repeat("&", MaxURLLength-len(base)))
		key := fmt.Sprintf("batches/r/bodies/%d", i)
		bw, _ := dir.Create(ctx, key)
		_, _ = bw.Write(body)
		_ = bw.Commit()
		items = append(items, Fetched{Index: i, Blob: key, Status: 200, Attempts: 1, Size: int64(len(body)), CRC32C: &crc})
	}
	_ = w.Commit()
	var s testsuite.WorkflowTestSuite
	var mu sync.Mutex
	largest, n := 0, 0
	env := s.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&heartbeats{record: func(details []any) {
		sz := payloadSize(t, details[0])
		mu.Lock()
		n++
		largest = max(largest, sz)
		mu.Unlock()
	}}}})
	h := &Hasher{Store: dir, HeartbeatEvery: 5 * time.Millisecond}
	env.RegisterActivity(h)
	if _, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Prefix: "batches/r", Chunk: 0, Items: items, Staged: true}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d heartbeats, largest %d bytes", n, largest)
	if n == 0 || largest > 128<<10 { // about 160 bytes a URL
		t.Errorf("%d heartbeats, the largest %d bytes: want small ones", n, largest)
	}
}

// stagedChunk is the URLs in a chunk of a staged batch
// (workflows.StagedChunkSize).
const stagedChunk = 500

// A server's long reason phrase, made of characters JSON escapes six-fold,
// takes at most MaxErrorText bytes of any payload, so a staged chunk of
// 500 such failures stays well under Temporal's 2 MB payload limit.
func TestLongErrorsStaySmall(t *testing.T) {
	base := statusline.Serve(t, "404 "+strings.Repeat("<", 3000))
	e := newFetchEnv(t, 0)
	w, _ := e.store.Create(context.Background(), URLsKey("batches/r", 0))
	for i := range stagedChunk {
		fmt.Fprintf(w, "%s/%d\n", base, i)
	}
	_ = w.Commit()
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", Chunk: 0, First: 0, Concurrency: 10, Policy: quick})
	size := payloadSize(t, FetchChunkResult{Items: items})
	t.Logf("fetch result %d bytes; error 0 is %d bytes", size, len(items[0].Error))
	for _, it := range items {
		b, _ := json.Marshal(it.Error)
		if it.Outcome != OutcomeHTTPError || len(b)-2 > MaxErrorText {
			t.Fatalf("item %d: %s, its error encodes to %d bytes", it.Index, it.Outcome, len(b)-2)
		}
	}
	if size > 1<<20 {
		t.Errorf("fetch result of %d bytes", size)
	}
}

// A retried staged chunk restores its finished URLs from a checkpoint that
// leaves URLs out: the failed one a fail_fast batch names keeps its URL.
func TestRetriedChunkNamesItsFailedURL(t *testing.T) {
	e := newFetchEnv(t, 0)
	w, _ := e.store.Create(context.Background(), URLsKey("batches/r", 0))
	fmt.Fprintln(w, "http://127.0.0.1:1/a")
	_ = w.Commit()
	e.env.SetHeartbeatDetails(FetchCheckpoint{Done: []Fetched{{Index: 0, Outcome: OutcomeHTTPError, Status: 404, Error: "HTTP 404 Not Found"}}})
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", Chunk: 0, First: 0, Concurrency: 1, Policy: Policy{AttemptTimeout: time.Second, MaxAttempts: 1, FailFast: true}})
	if items[0].URL != "http://127.0.0.1:1/a" || items[0].Status != 404 {
		t.Errorf("first failed item: %+v, want its URL", items[0])
	}
}

// A server (or a proxy in front of it) that ignores If-Range and sends a
// 206 without the validator, the body having changed to another of the
// same length: the kept part is dropped and v2 fetched whole.
func TestResumeRefusesA206WithoutItsValidator(t *testing.T) {
	v1 := randomBytes(21, SmallBody+1000) // over SmallBody: resumable
	v2 := randomBytes(22, SmallBody+1000)
	var mu sync.Mutex
	n := 0
	var resumed string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		if k == 2 {
			resumed = r.Header.Get("Range")
		}
		mu.Unlock()
		if k == 1 {
			dropAfter(w, `"v1"`, v1, 400)
			return
		}
		if r.Header.Get("Range") == "" {
			w.Header().Set("ETag", `"v2"`)
			_, _ = w.Write(v2)
			return
		}
		// If-Range ignored, ETag not repeated in the 206
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 400-%d/%d", len(v2)-1, len(v2)))
		w.Header().Set("Content-Length", "600")
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(v2[400:])
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/x"), Concurrency: 1, Policy: quick})[0]
	r := e.hashOne(t, it)
	mixed := append(append([]byte{}, v1[:400]...), v2[400:]...)
	t.Logf("outcome %s size %d sha %s; v1 %s v2 %s mixed %s", r.Outcome, r.Size, r.SHA256[:12], hexSum(v1)[:12], hexSum(v2)[:12], hexSum(mixed)[:12])
	if r.Outcome != OutcomeOK || r.SHA256 != hexSum(v2) {
		t.Errorf("got %s sha256 %s, want ok with v2 (a mix of v1 and v2: %v)", r.Outcome, r.SHA256, r.SHA256 == hexSum(mixed))
	}
	mu.Lock()
	defer mu.Unlock()
	if resumed != "bytes=400-" {
		t.Errorf("the second request asked for %q, want the rest (bytes=400-)", resumed)
	}
}
