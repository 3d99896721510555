package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
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

// worstValue is, of values of each length in lengths made of one
// character, the one CheckPrevious accepts in the field set puts it in
// whose JSON encoding is the longest (extra are more values to try).
func worstValue(base Result, set func(*Result, string), lengths []int, extra ...string) string {
	best := ""
	try := func(v string) {
		r := base
		set(&r, v)
		if CheckPrevious(r) == nil && JSONLen(v) > JSONLen(best) {
			best = v
		}
	}
	for _, n := range lengths {
		for _, c := range []string{"\x01", "\xff", "<", `"`, "a"} {
			try(strings.Repeat(c, n))
		}
	}
	for _, v := range extra {
		try(v)
	}
	return best
}

// The worst earlier results the checks accept (each carried field the
// longest encoding CheckPrevious lets through) joined to a staged chunk
// of 500 URLs, whose server answers with the worst headers a result
// keeps: every payload of the chunk's activities (fetch result and
// heartbeats, hash request and heartbeats) stays under 1 MiB, half of
// Temporal's 2 MB limit.
func TestWorstPreviousKeepsAStagedChunkSmall(t *testing.T) {
	sha := strings.Repeat("f", 64)
	base := Result{URL: "http://127.0.0.1/", Outcome: OutcomeOK, SHA256: sha, Size: math.MaxInt64}
	lengths := []int{1 << 12, 1 << 10, 512, 256, 128, 64, 32}
	base.ETag = worstValue(base, func(r *Result, v string) { r.ETag = v }, lengths)
	base.LastModified = worstValue(base, func(r *Result, v string) { r.LastModified = v }, lengths)
	base.ContentType = worstValue(base, func(r *Result, v string) { r.ContentType = v }, lengths)
	base.Date = worstValue(base, func(r *Result, v string) { r.Date = v }, lengths)
	base.BodyKey = worstValue(base, func(r *Result, v string) { r.BodyKey = v }, lengths, KeptBodyKey(sha))
	t.Logf("worst accepted: etag %d, last_modified %d, content_type %d, date %d, body_key %d bytes encoded",
		JSONLen(base.ETag), JSONLen(base.LastModified), JSONLen(base.ContentType), JSONLen(base.Date), JSONLen(base.BodyKey))

	// The server's headers at the longest a result keeps, of the
	// characters JSON escapes most among those kept.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", strings.Repeat(`"`, maxContentType))
		w.Header().Set("ETag", strings.Repeat(`"`, maxETag))
		w.Header().Set("Last-Modified", strings.Repeat(`"`, maxDate))
		w.Header().Set("Date", strings.Repeat(`"`, maxDate))
		_, _ = io.WriteString(w, "body")
	}))
	defer srv.Close()
	var mu sync.Mutex
	largest := map[string]int{}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&heartbeats{record: func(details []any) {
		sz := payloadSize(t, details[0])
		mu.Lock()
		defer mu.Unlock()
		k := fmt.Sprintf("%T heartbeat", details[0])
		largest[k] = max(largest[k], sz)
	}}}})
	store, _ := blobstore.NewDir(t.TempDir())
	client, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := &Fetcher{Client: client, Store: store, HeartbeatEvery: 5 * time.Millisecond}
	h := &Hasher{Store: store, HeartbeatEvery: 5 * time.Millisecond}
	env.RegisterActivity(f)
	env.RegisterActivity(h)

	ctx := context.Background()
	var urls []string
	pw, _ := store.Create(ctx, "inputs/previous.jsonl")
	enc := json.NewEncoder(pw)
	for i := range stagedChunk {
		r := base
		r.URL = fmt.Sprintf("%s/%d", srv.URL, i)
		urls = append(urls, r.URL)
		_ = enc.Encode(r)
	}
	if err := pw.Commit(); err != nil {
		t.Fatal(err)
	}
	v, err := env.ExecuteActivity(f.StageURLs, StageRequest{Prefix: "batches/r", URLs: urls, ChunkSize: stagedChunk, PreviousFile: "inputs/previous.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	var st StageResult
	if err := v.Get(&st); err != nil || st.Chunks != 1 || st.PrevParts != 1 {
		t.Fatalf("staged %+v, %v", st, err)
	}
	v, err = env.ExecuteActivity(f.FetchChunk, FetchChunkRequest{Prefix: "batches/r", Chunk: 0, Concurrency: 20, Policy: quick, PrevParts: st.PrevParts, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	var fetched FetchChunkResult
	if err := v.Get(&fetched); err != nil {
		t.Fatal(err)
	}
	for _, it := range fetched.Items {
		if it.Outcome != "" || it.Prev == nil || it.Prev.ContentType != base.ContentType || it.ETag != strings.Repeat(`"`, maxETag) {
			t.Fatalf("item %d: %+v, want a body with the worst earlier result and headers", it.Index, it)
		}
	}
	hashReq := HashChunkRequest{Prefix: "batches/r", Chunk: 0, Items: fetched.Items, Staged: true, Compare: true, Keep: true}
	v, err = env.ExecuteActivity(h.HashChunk, hashReq)
	if err != nil {
		t.Fatal(err)
	}
	var hashed HashChunkResult
	if err := v.Get(&hashed); err != nil || hashed.OK != stagedChunk {
		t.Fatalf("hashed %+v, %v", hashed, err)
	}
	mu.Lock()
	defer mu.Unlock()
	largest["fetch result"] = payloadSize(t, fetched)
	largest["hash request"] = payloadSize(t, hashReq)
	largest["hash result"] = payloadSize(t, hashed)
	t.Logf("largest payloads: %v", largest)
	if len(largest) < 5 {
		t.Errorf("payloads seen: %v, want the fetch and hash heartbeats too", largest)
	}
	for k, sz := range largest {
		if sz > 1<<20 {
			t.Errorf("%s: %d bytes, over 1 MiB", k, sz)
		}
	}
}
