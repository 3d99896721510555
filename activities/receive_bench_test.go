package activities

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
)

// BenchmarkFetchLargeBody measures a large body's way from a loopback
// server into the blob store (the copy buffer's reads, the CRC-32C, the
// writes), as one URL of a chunk, in wall time and in CPU time (both
// sides: the server is in the process too):
//
//	BENCH_DIR=/dev/shm go test -run XXX -bench FetchLargeBody -benchtime 5x ./activities
func BenchmarkFetchLargeBody(b *testing.B) {
	const size = 256 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i * 7)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	dir, err := os.MkdirTemp(os.Getenv("BENCH_DIR"), "fetchlarge-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store, err := blobstore.NewDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	client, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		b.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	env := s.NewTestActivityEnvironment()
	f := &Fetcher{Client: client, Store: store}
	env.RegisterActivity(f)
	b.SetBytes(size)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		v, err := env.ExecuteActivity(f.FetchChunk, FetchChunkRequest{Prefix: "batches/b" + strconv.Itoa(i), URLs: chunkOf(srv.URL + "/x"), Concurrency: 1,
			Policy: Policy{AttemptTimeout: time.Minute, MaxAttempts: 1, InitialBackoff: time.Second}})
		if err != nil {
			b.Fatal(err)
		}
		var out FetchChunkResult
		if err := v.Get(&out); err != nil || out.Items[0].Size != size {
			b.Fatalf("fetched %+v (%v)", out.Items, err)
		}
		b.StopTimer()
		_ = store.DeletePrefix(b.Context(), "batches/b"+strconv.Itoa(i))
		b.StartTimer()
	}
	b.StopTimer()
	// CPU time is steadier than wall time on a busy machine: the buffer's
	// cost is its syscalls.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*(size>>20)), "cpu-µs/MiB")
}

// cpuTime is the process's user and system time (the server's side too).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
