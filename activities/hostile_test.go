package activities

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestHostileServers runs the fetcher against servers that misbehave. Each
// case ends with the right outcome and attempt count, keeps no blob, and
// leaves no connection or goroutine behind.
func TestHostileServers(t *testing.T) {
	cases := []struct {
		name     string
		handler  http.HandlerFunc
		outcome  string
		attempts int
		msg      string
	}{
		{"reset mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "50000")
			_, _ = w.Write(make([]byte, 5000))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
				conn.Close()
			}
		}, OutcomeError, 2, "connection reset"},
		{"content-length longer than the body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write([]byte("short"))
		}, OutcomeError, 2, "truncated after 5 of 1000 bytes"},
		{"drips past the timeout", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			for {
				if _, err := w.Write([]byte("x")); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(time.Second):
				}
			}
		}, OutcomeTimeout, 2, "attempt timed out"},
		{"redirect loop", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		}, OutcomeError, 1, "too many redirects"},
		{"redirect chain over the limit", func(w http.ResponseWriter, r *http.Request) {
			var n int
			fmt.Sscanf(r.URL.Query().Get("n"), "%d", &n)
			http.Redirect(w, r, fmt.Sprintf("/next?n=%d", n+1), http.StatusMovedPermanently)
		}, OutcomeError, 1, "too many redirects"},
		{"body over the cap", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(make([]byte, 70000))
		}, OutcomeError, 1, "over the 65536-byte cap"},
		{"endless chunked body", func(w http.ResponseWriter, r *http.Request) {
			chunk := make([]byte, 4096)
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}, OutcomeError, 1, "over the 65536-byte cap"},
		{"200 that errors mid-stream", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(make([]byte, 3000))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the server drops the connection
		}, OutcomeError, 2, "cut off after 3000 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			var open atomic.Int32
			srv := httptest.NewUnstartedServer(tc.handler)
			srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
				switch s {
				case http.StateNew:
					open.Add(1)
				case http.StateClosed, http.StateHijacked:
					open.Add(-1)
				}
			}
			srv.Start()
			e := newFetchEnv(t, 64<<10)
			p := Policy{AttemptTimeout: 1500 * time.Millisecond, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}
			it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/start"), Concurrency: 1, Policy: p})[0]
			if it.Outcome != tc.outcome || it.Attempts != tc.attempts || !strings.Contains(it.Error, tc.msg) {
				t.Errorf("got outcome %q after %d attempts (%q), want %q after %d (%q)", it.Outcome, it.Attempts, it.Error, tc.outcome, tc.attempts, tc.msg)
			}
			if f := e.files(t); len(f) != 0 {
				t.Errorf("blobs left: %v", f)
			}
			e.f.Client.CloseIdleConnections()
			srv.Close()
			if n := open.Load(); n != 0 {
				t.Errorf("%d connections still open", n)
			}
		})
	}
}
