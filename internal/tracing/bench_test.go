package tracing_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batchfetch/batchfetch/internal/tracing"
)

// BenchmarkTransport is a 1 KiB GET on 127.0.0.1: untraced (tracing
// off), traced outside any span (robots.txt), and traced in a span.
//
//	go test -run '^$' -bench Transport ./internal/tracing
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 1024))
	}))
	defer srv.Close()
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	ctx, parent := tp.Tracer("bench").Start(context.Background(), "activity")
	defer parent.End()
	for _, bc := range []struct {
		name string
		tp   *sdktrace.TracerProvider
		ctx  context.Context
	}{{"off", nil, context.Background()}, {"on/outside-a-span", tp, context.Background()}, {"on/in-a-span", tp, ctx}} {
		b.Run(bc.name, func(b *testing.B) {
			base := http.DefaultTransport.(*http.Transport).Clone()
			defer base.CloseIdleConnections()
			var rt http.RoundTripper = base
			if bc.tp != nil {
				rt = tracing.Transport(base, bc.tp)
			}
			hc := &http.Client{Transport: rt}
			b.ReportAllocs()
			for range b.N {
				req, _ := http.NewRequestWithContext(tracing.WithAttempt(bc.ctx, 1, 1), http.MethodGet, srv.URL+"/page?q=1", nil)
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
