package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
)

func TestClassifyStatus(t *testing.T) {
	cases := map[int]StatusClass{
		200: StatusOK, 204: StatusOK, 299: StatusOK,
		301: StatusPermanent, 400: StatusPermanent, 401: StatusPermanent, 404: StatusPermanent, 410: StatusPermanent,
		408: StatusRetryable, 429: StatusRetryable, 500: StatusRetryable, 502: StatusRetryable, 503: StatusRetryable, 599: StatusRetryable,
		600: StatusPermanent, 100: StatusPermanent,
	}
	for code, want := range cases {
		if got := ClassifyStatus(code); got != want {
			t.Errorf("ClassifyStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"999999999", time.Hour},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		if got := RetryAfter(tc.h, now); got != tc.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("https://bob:hunter2@example.com/x"); strings.Contains(got, "hunter2") {
		t.Errorf("Redact kept the password: %s", got)
	}
	if got := Redact("https://example.com/x"); got != "https://example.com/x" {
		t.Errorf("Redact changed a plain URL: %s", got)
	}
}

type fetchEnv struct {
	env   *testsuite.TestActivityEnvironment
	dir   string
	store *blobstore.Dir
	f     *Fetcher
	h     *Hasher
}

func newFetchEnv(t *testing.T, maxBody int64) *fetchEnv {
	var s testsuite.WorkflowTestSuite
	dir := t.TempDir()
	store, err := blobstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(ClientConfig{MaxRedirects: 3, Guard: Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	env := s.NewTestActivityEnvironment()
	f := &Fetcher{Client: client, Store: store, MaxBodyBytes: maxBody}
	h := &Hasher{Store: store}
	env.RegisterActivity(f)
	env.RegisterActivity(h)
	return &fetchEnv{env: env, dir: dir, store: store, f: f, h: h}
}

func (e *fetchEnv) files(t *testing.T) []string {
	var out []string
	_ = filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func chunkOf(urls ...string) []URLTask {
	var ts []URLTask
	for i, u := range urls {
		ts = append(ts, URLTask{Index: i, URL: u})
	}
	return ts
}

var quick = Policy{AttemptTimeout: 2 * time.Second, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}

func (e *fetchEnv) fetch(t *testing.T, req FetchChunkRequest) []Fetched {
	t.Helper()
	v, err := e.env.ExecuteActivity(e.f.FetchChunk, req)
	if err != nil {
		t.Fatalf("FetchChunk: %v", err)
	}
	var out FetchChunkResult
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

func TestFetchChunkStoresBodiesAndHashes(t *testing.T) {
	body := strings.Repeat("0123456789", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "/final", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, body+r.URL.Path)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	urls := []string{srv.URL + "/start", srv.URL + "/a", srv.URL + "/b"}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(urls...), Concurrency: 2, Policy: quick})
	if len(items) != 3 {
		t.Fatalf("got %d items", len(items))
	}
	for i, it := range items {
		if it.Outcome != "" || it.Status != 200 || it.Attempts != 1 || !strings.HasPrefix(it.Blob, BodyKey(WorkPrefix("batches/r", 0), i)+".") || it.URL != urls[i] {
			t.Errorf("item %d: %+v", i, it)
		}
	}
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Prefix: "batches/r", Items: items})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashChunkResult
	if err := v.Get(&hr); err != nil {
		t.Fatal(err)
	}
	for i, path := range []string{"/final", "/a", "/b"} {
		sum := sha256.Sum256([]byte(body + path))
		r := hr.Results[i]
		if r.Outcome != OutcomeOK || r.SHA256 != hex.EncodeToString(sum[:]) || r.Size != int64(len(body)+len(path)) {
			t.Errorf("result %d: %+v, want sha256 %x", i, r, sum)
		}
	}
	if hr.OK != 3 || hr.Failed != 0 || hr.FirstFailed != nil {
		t.Errorf("counts %+v", hr)
	}
}

func TestFetchChunkOutcomes(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		n := calls[r.URL.Path]
		mu.Unlock()
		switch r.URL.Path {
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 2000))
		case "/big-declared":
			w.Header().Set("Content-Length", "5000")
			_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		case "/short":
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, "only this")
		case "/busy-then-ok":
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
		case "/gone":
			w.WriteHeader(http.StatusGone)
		case "/down":
			w.WriteHeader(http.StatusBadGateway)
		case "/slow":
			<-r.Context().Done()
		}
	}))
	defer srv.Close()
	cases := []struct {
		path, outcome string
		status        int
		attempts      int
		msg           string
	}{
		{"/loop", OutcomeError, 0, 1, "too many redirects"},
		{"/big", OutcomeError, 200, 1, "over the 1000-byte cap"},
		{"/big-declared", OutcomeError, 200, 1, "over the 1000-byte cap"},
		{"/short", OutcomeError, 200, 2, "truncated after 9 of 1000 bytes"},
		{"/busy-then-ok", "", 200, 2, ""},
		{"/gone", OutcomeHTTPError, 410, 1, "HTTP 410 Gone"},
		{"/down", OutcomeHTTPError, 502, 2, "HTTP 502 Bad Gateway"},
		{"/slow", OutcomeTimeout, 0, 2, "attempt timed out"},
	}
	var urls []string
	for _, tc := range cases {
		urls = append(urls, srv.URL+tc.path)
	}
	e := newFetchEnv(t, 1000)
	p := quick
	p.AttemptTimeout = 500 * time.Millisecond
	start := time.Now()
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(urls...), Concurrency: len(urls), Policy: p})
	for i, tc := range cases {
		it := items[i]
		if it.Outcome != tc.outcome || it.Status != tc.status || it.Attempts != tc.attempts || !strings.Contains(it.Error, tc.msg) {
			t.Errorf("%s: got outcome %q status %d attempts %d error %q, want %q %d %d %q", tc.path, it.Outcome, it.Status, it.Attempts, it.Error, tc.outcome, tc.status, tc.attempts, tc.msg)
		}
		requests := tc.attempts
		if tc.path == "/loop" {
			requests = 4 // one attempt: the request and the 3 redirects allowed
		}
		mu.Lock()
		if n := calls[tc.path]; n != requests {
			t.Errorf("%s: server saw %d requests, want %d", tc.path, n, requests)
		}
		mu.Unlock()
	}
	if time.Since(start) < time.Second {
		t.Errorf("the chunk ended before Retry-After (1s) allowed the retry")
	}
	// Only the one body that was fetched is in the store.
	if f := e.files(t); len(f) != 1 {
		t.Errorf("files left: %v, want the one fetched body", f)
	}
}

func TestURLTimeoutEndsRetries(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	p := Policy{AttemptTimeout: time.Second, URLTimeout: 300 * time.Millisecond, MaxAttempts: 50, InitialBackoff: 50 * time.Millisecond}
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL), Concurrency: 1, Policy: p})[0]
	if it.Outcome != OutcomeHTTPError || it.Status != 503 || it.Attempts < 2 || it.Attempts > 5 {
		t.Errorf("got %+v, want http_error 503 after a few attempts within 300ms", it)
	}
}

func TestFetchChunkFailFastStopsTheChunk(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	p := quick
	p.FailFast, p.AttemptTimeout = true, time.Minute
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/hang", srv.URL+"/missing", srv.URL+"/later"), Concurrency: 2, Policy: p})
	want := []string{OutcomeCanceled, OutcomeHTTPError, OutcomeCanceled}
	for i, w := range want {
		if items[i].Outcome != w {
			t.Errorf("item %d: outcome %q, want %q", i, items[i].Outcome, w)
		}
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/x"
	srv.Close() // nothing listens there any more
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(url), Concurrency: 1, Policy: quick})[0]
	if it.Outcome != OutcomeError || it.Attempts != 2 || !strings.Contains(it.Error, "connection refused") {
		t.Errorf("got %+v, want error after 2 attempts", it)
	}
}

func TestBackoffDoubles(t *testing.T) {
	p := Policy{InitialBackoff: 500 * time.Millisecond}
	for attempt, want := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 40: time.Hour} {
		if got := p.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
}

// countingStore counts the bytes read from it.
type countingStore struct {
	blobstore.Store
	read atomic.Int64
}

type countingReader struct {
	io.ReadSeekCloser
	n *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadSeekCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func (s *countingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return countingReader{r.(io.ReadSeekCloser), &s.read}, nil
}

func TestHashResumesFromCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir, _ := blobstore.NewDir(t.TempDir())
	body := bytes.Repeat([]byte("abcdefgh"), 3<<20/8) // 3 MiB
	w, _ := dir.Create(ctx, "batches/r/bodies/00/000000000")
	_, _ = w.Write(body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	// The checkpoint a crashed attempt left: 2 MiB hashed.
	const done = 2 << 20
	partial := sha256.New()
	partial.Write(body[:done])
	state, _ := partial.(encoding.BinaryMarshaler).MarshalBinary()

	store := &countingStore{Store: dir}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	h := &Hasher{Store: store}
	env.RegisterActivity(h)
	crcDone := crc32.Checksum(body[:done], castagnoli)
	crcAll := crc32.Checksum(body, castagnoli)
	env.SetHeartbeatDetails(hashCheckpoint{Blob: "batches/r/bodies/00/000000000", Offset: done, State: state, CRC32C: crcDone})
	v, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Items: []Fetched{{URL: "http://x/", Blob: "batches/r/bodies/00/000000000", Status: 200, Attempts: 1, Size: int64(len(body)), CRC32C: &crcAll}}})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashChunkResult
	if err := v.Get(&hr); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if hr.Results[0].SHA256 != hex.EncodeToString(sum[:]) || hr.Results[0].Size != int64(len(body)) {
		t.Errorf("got %+v, want sha256 %x of %d bytes", hr.Results[0], sum, len(body))
	}
	if n := store.read.Load(); n != int64(len(body)-done) {
		t.Errorf("read %d bytes, want only the %d after the checkpoint", n, len(body)-done)
	}
}

func TestStageAndAssemble(t *testing.T) {
	e := newFetchEnv(t, 0)
	ctx := context.Background()
	w, _ := e.store.Create(ctx, "inputs/list.txt")
	fmt.Fprint(w, "# my list\nhttp://a.example/0\n\nhttp://a.example/1  # note\nhttp://a.example/2\nhttp://a.example/3\nhttp://a.example/4\n")
	_ = w.Commit()
	v, err := e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/r", URLsFile: "inputs/list.txt", ChunkSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var st StageResult
	_ = v.Get(&st)
	if st.Count != 5 || st.Chunks != 3 {
		t.Fatalf("staged %+v, want 5 URLs in 3 chunks", st)
	}
	// Chunk 0 finished, chunk 1 never ran, chunk 2 stopped with a known failure.
	if err := writeResults(ctx, e.store, ResultsKey("batches/r", 0), []Result{{URL: "http://a.example/0", Outcome: OutcomeOK}, {URL: "http://a.example/1", Outcome: OutcomeOK}}); err != nil {
		t.Fatal(err)
	}
	v, err = e.env.ExecuteActivity(e.f.AssembleResults, AssembleRequest{Prefix: "batches/r", Chunks: 3, ChunkSize: 2, Dest: "results/r.jsonl",
		Known: []IndexedResult{{Index: 4, Result: Result{Outcome: OutcomeHTTPError, Status: 404}}}})
	if err != nil {
		t.Fatal(err)
	}
	var ar AssembleResult
	_ = v.Get(&ar)
	if ar.OK != 2 || ar.Failed != 3 || ar.Canceled != 2 {
		t.Errorf("counts %+v, want 2 ok and 3 failed, 2 of them canceled", ar)
	}
	r, err := e.store.Open(ctx, "results/r.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"0\",\"outcome\":\"ok", "1\",\"outcome\":\"ok", "2\",\"outcome\":\"canceled", "3\",\"outcome\":\"canceled", "4\",\"outcome\":\"http_error"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines: %s", len(lines), b)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], "http://a.example/"+w) {
			t.Errorf("line %d = %s, want it to hold %s", i, lines[i], w)
		}
	}
}

func TestStageRefusesABadURLAndLeavesNothing(t *testing.T) {
	e := newFetchEnv(t, 0)
	var urls []string
	for i := range 250 {
		urls = append(urls, fmt.Sprintf("http://a.example/%d", i))
	}
	urls[201] = "file:///etc/passwd"
	_, err := e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/r", URLs: urls, ChunkSize: 100})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != InvalidInputType || !strings.Contains(appErr.Message(), "urls[201]") {
		t.Fatalf("got %v, want InvalidInput naming urls[201]", err)
	}
	if f := e.files(t); len(f) != 0 {
		t.Errorf("files left: %v", f)
	}
}

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.Create(ctx, "batches/run/000001")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "body")
	if _, err := store.Open(ctx, "batches/run/000001"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("blob visible before Commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, "batches/run/000001")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "body" {
		t.Errorf("read %q", b)
	}
	aborted, _ := store.Create(ctx, "batches/run/000002")
	fmt.Fprint(aborted, "half")
	if err := aborted.Abort(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../escape", "/abs", "a/../../b", ""} {
		if _, err := store.Create(ctx, bad); err == nil {
			t.Errorf("Create(%q) accepted a key outside the store", bad)
		}
	}
	if err := store.DeletePrefix(ctx, "batches/run"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(store.Root)
	if len(entries) != 0 {
		t.Errorf("DeletePrefix left %d entries in the root", len(entries))
	}
}

func TestDroppedConnectionResumesWithRange(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if first { // send 1 MiB, then drop the connection
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body[:1<<20])
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/big"), Concurrency: 1, Policy: quick})[0]
	if it.Outcome != "" || it.Size != int64(len(body)) || it.Attempts != 2 {
		t.Fatalf("got %+v, want the whole body after 2 attempts", it)
	}
	mu.Lock()
	if len(ranges) != 2 || ranges[0] != "" || ranges[1] != "bytes=1048576-" {
		t.Errorf("requests asked for ranges %q, want the whole body, then bytes=1048576-", ranges)
	}
	mu.Unlock()
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Items: []Fetched{it}})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashChunkResult
	_ = v.Get(&hr)
	sum := sha256.Sum256(body)
	if hr.Results[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("sha256 %s, want %x: the resumed body is not the body", hr.Results[0].SHA256, sum)
	}
}

func TestChangedBodyIsFetchedWhole(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Length", "2000000")
			_, _ = w.Write(make([]byte, 500000))
			w.(http.Flusher).Flush()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.Header().Set("ETag", `"v2"`) // changed: If-Range fails, the whole new body comes
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("the new body"))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL), Concurrency: 1, Policy: quick})[0]
	if it.Outcome != "" || it.Size != int64(len("the new body")) {
		t.Fatalf("got %+v, want the new body, whole", it)
	}
}
