package activities

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batchfetch/batchfetch/internal/tracing"
)

// Traced, the fetch worker's client keeps its guard, its User-Agent and
// its redirect rules: tracing wraps the transport, it does not replace it.
func TestTracedClientKeepsTheGuard(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	defer l.Close()
	forbidden := "http://" + l.Addr().String() + "/secret"
	var agent atomic.Value
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.UserAgent())
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, forbidden, http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("public"))
	}))
	defer allowed.Close()

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	hc, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.0.1"}}, UserAgent: "batchfetch/test", Proxy: ProxyDirect, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	ctx, parent := tp.Tracer("test").Start(context.Background(), "activity")
	defer parent.End()
	get := func(url string) error {
		req, err := http.NewRequestWithContext(tracing.WithAttempt(ctx, 0, 1), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			drain(resp.Body)
			resp.Body.Close()
		}
		return err
	}
	if err := get(allowed.URL + "/ok"); err != nil {
		t.Fatalf("the allowed server: %v", err)
	}
	if agent.Load() != "batchfetch/test" {
		t.Errorf("User-Agent %v, want the worker's", agent.Load())
	}
	for _, url := range []string{forbidden, allowed.URL + "/redirect"} {
		var blocked *BlockedError
		if err := get(url); !errors.As(err, &blocked) {
			t.Errorf("%s: %v, want a *BlockedError", url, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the forbidden address", n)
	}
	// ok; refused; the redirect's two hops, the second refused.
	var failed int
	spans := exp.GetSpans()
	for _, s := range spans {
		if s.Status.Code == codes.Error {
			failed++
		}
	}
	if len(spans) != 4 || failed != 2 {
		t.Errorf("%d HTTP spans, %d failed; want 4, 2 (the refused connections)", len(spans), failed)
	}
}
