package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/blobstore"
)

// Integrity: an ok result's sha256 and size are those of one complete
// body the server sent, whatever retries, resumes and frozen attempts did.

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
	_, _ = r.Read(b)
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestHashResumesFromAnyCheckpoint hashes a 128 MiB blob heartbeating as
// often as it can, the heartbeat racing the hash, then resumes from every
// distinct checkpoint: every resumed digest is the true one, and each
// resumed attempt reads only what its checkpoint had left.
func TestHashResumesFromAnyCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir, _ := blobstore.NewDir(t.TempDir())
	body := randomBytes(1, 128<<20)
	const key = "batches/r/bodies/00/000000000.a"
	w, _ := dir.Create(ctx, key)
	_, _ = w.Write(body)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	crc := crc32.Checksum(body, castagnoli)
	item := Fetched{URL: "http://x/", Blob: key, Status: 200, Attempts: 1, Size: int64(len(body)), CRC32C: &crc}
	want := hexSum(body)

	var s testsuite.WorkflowTestSuite
	var mu sync.Mutex
	var cps []hashCheckpoint
	env := s.NewTestActivityEnvironment()
	// Every checkpoint the activity records, before the SDK batches them.
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&heartbeats{record: func(details []any) {
		if cp, ok := details[0].(hashCheckpoint); ok && cp.State != nil {
			mu.Lock()
			cps = append(cps, cp)
			mu.Unlock()
		}
	}}}})
	h := &Hasher{Store: dir, HeartbeatEvery: 50 * time.Microsecond}
	env.RegisterActivity(h)
	v, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Items: []Fetched{item}})
	if err != nil {
		t.Fatal(err)
	}
	var first HashChunkResult
	if err := v.Get(&first); err != nil || first.Results[0].SHA256 != want {
		t.Fatalf("first hash: %+v, %v", first, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cps) < 5 {
		t.Fatalf("only %d checkpoints while hashing 128 MiB", len(cps))
	}
	// The digest state moves every 4 MiB read: resume from each distinct
	// offset the heartbeats caught.
	seen := map[int64]bool{}
	var distinct []hashCheckpoint
	for _, cp := range cps {
		if !seen[cp.Offset] {
			seen[cp.Offset] = true
			distinct = append(distinct, cp)
		}
	}
	if len(distinct) < len(body)/hashChunk/2 {
		t.Fatalf("checkpoints at only %d distinct offsets of %d", len(distinct), len(body)/hashChunk)
	}
	for _, cp := range distinct {
		store := &countingStore{Store: dir}
		env := s.NewTestActivityEnvironment()
		h := &Hasher{Store: store}
		env.RegisterActivity(h)
		env.SetHeartbeatDetails(cp)
		v, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Items: []Fetched{item}})
		if err != nil {
			t.Fatalf("resuming at %d: %v", cp.Offset, err)
		}
		var got HashChunkResult
		_ = v.Get(&got)
		if got.Results[0].Outcome != OutcomeOK || got.Results[0].SHA256 != want {
			t.Errorf("resumed at %d of %d: %+v, want sha256 %s", cp.Offset, len(body), got.Results[0], want)
		}
		if n := store.read.Load(); n != int64(len(body))-cp.Offset {
			t.Errorf("resumed at %d: read %d bytes, want the %d after it", cp.Offset, n, int64(len(body))-cp.Offset)
		}
	}
	t.Logf("%d checkpoints at %d distinct offsets; resumed from each", len(cps), len(distinct))
}

// heartbeats hands every heartbeat's details to record.
type heartbeats struct {
	interceptor.WorkerInterceptorBase
	record func([]any)
}

func (h *heartbeats) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &heartbeatsIn{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, h: h}
}

type heartbeatsIn struct {
	interceptor.ActivityInboundInterceptorBase
	h *heartbeats
}

func (i *heartbeatsIn) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return i.Next.Init(&heartbeatsOut{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, h: i.h})
}

type heartbeatsOut struct {
	interceptor.ActivityOutboundInterceptorBase
	h *heartbeats
}

func (o *heartbeatsOut) RecordHeartbeat(ctx context.Context, details ...any) {
	o.h.record(details)
	o.Next.RecordHeartbeat(ctx, details...)
}

// A checkpoint of another blob (another attempt's body) is never resumed.
func TestHashIgnoresACheckpointOfAnotherBlob(t *testing.T) {
	ctx := context.Background()
	dir, _ := blobstore.NewDir(t.TempDir())
	body := randomBytes(2, 6<<20)
	w, _ := dir.Create(ctx, "b/new")
	_, _ = w.Write(body)
	_ = w.Commit()
	crc := crc32.Checksum(body, castagnoli)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	h := &Hasher{Store: dir}
	env.RegisterActivity(h)
	other := sha256.New()
	other.Write(randomBytes(3, 4<<20))
	state, _ := other.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	env.SetHeartbeatDetails(hashCheckpoint{Blob: "b/old", Offset: 4 << 20, State: state})
	v, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Items: []Fetched{{URL: "http://x/", Blob: "b/new", Size: int64(len(body)), CRC32C: &crc}}})
	if err != nil {
		t.Fatal(err)
	}
	var got HashChunkResult
	_ = v.Get(&got)
	if got.Results[0].SHA256 != hexSum(body) {
		t.Errorf("sha256 %s, want %s: a checkpoint of another blob was resumed", got.Results[0].SHA256, hexSum(body))
	}
}

// A blob whose bytes differ from what the fetch stored is never reported
// ok: the hash attempt fails (retryably) with IntegrityMismatch.
func TestHashRefusesABlobThatChanged(t *testing.T) {
	ctx := context.Background()
	dir, _ := blobstore.NewDir(t.TempDir())
	body := randomBytes(4, 1<<20)
	crc := crc32.Checksum(body, castagnoli)
	for name, stored := range map[string][]byte{
		"same size, a byte flipped": append(append([]byte{}, body[:1000]...), append([]byte{body[1000] ^ 1}, body[1001:]...)...),
		"shorter":                   body[:len(body)-1],
		"longer":                    append(append([]byte{}, body...), 'x'),
	} {
		t.Run(name, func(t *testing.T) {
			w, _ := dir.Create(ctx, "b/x")
			_, _ = w.Write(stored)
			_ = w.Commit()
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			h := &Hasher{Store: dir}
			env.RegisterActivity(h)
			_, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Items: []Fetched{{URL: "http://x/", Blob: "b/x", Size: int64(len(body)), CRC32C: &crc}}})
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != IntegrityErrorType || appErr.NonRetryable() {
				t.Fatalf("got %v, want a retryable %s", err, IntegrityErrorType)
			}
		})
	}
}

// A body whose stream fails after its last byte is kept whole; the retry
// asks for the rest, the server answers 416, and the fetch starts over
// instead of failing the URL.
func TestRangeNotSatisfiableStartsOver(t *testing.T) {
	body := randomBytes(5, 256<<10)
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		first := len(ranges) == 1
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if first {
			// Chunked: the whole body, then the connection drops before
			// the last chunk marker.
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n", len(body))
			bw.Write(body)
			bw.WriteString("\r\n")
			bw.Flush()
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/x"), Concurrency: 1, Policy: quick})[0]
	if it.Outcome != "" || it.Size != int64(len(body)) {
		t.Fatalf("got %+v, want the body", it)
	}
	mu.Lock()
	t.Logf("ranges asked: %q", ranges)
	if len(ranges) != 3 || ranges[1] != fmt.Sprintf("bytes=%d-", len(body)) || ranges[2] != "" {
		t.Errorf("ranges %q, want the whole body, the (empty) rest, then the whole body again", ranges)
	}
	mu.Unlock()
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Items: []Fetched{it}})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashChunkResult
	_ = v.Get(&hr)
	if hr.Results[0].SHA256 != hexSum(body) {
		t.Errorf("sha256 %s, want %s", hr.Results[0].SHA256, hexSum(body))
	}
}

// A CPU worker whose blob store is not the one a chunk was fetched into
// refuses it with an error that says what to do, and Temporal retries it
// (on a worker that has the right store, when there is one).
func TestHashRefusesAChunkOfAnotherStore(t *testing.T) {
	dir, _ := blobstore.NewDir(t.TempDir())
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	h := &Hasher{Store: dir, StoreID: "mine", StoreLocation: "/var/blobs-here"}
	env.RegisterActivity(h)
	_, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Store: "theirs", Items: []Fetched{{URL: "http://x/", Blob: "b/x", Size: 1}}})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != WrongStoreType || appErr.NonRetryable() ||
		!strings.Contains(appErr.Message(), "/var/blobs-here") || !strings.Contains(appErr.Message(), "--blob-dir") {
		t.Fatalf("got %v, want a retryable %s naming the store and the flag", err, WrongStoreType)
	}
}
