package tracing_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batchfetch/batchfetch/internal/tracing"
)

// clearOTel unsets every variable that would turn tracing on.
func clearOTel(t *testing.T) {
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(v, "")
	}
}

func TestTracingOffWithoutAnEndpoint(t *testing.T) {
	clearOTel(t)
	tr, err := tracing.Setup(context.Background(), tracing.Config{Service: tracing.WorkerService})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.Provider() != nil || tr.Interceptors() != nil {
		t.Fatalf("tracing is on without an endpoint: enabled %v, provider %v, interceptors %v", tr.Enabled(), tr.Provider(), tr.Interceptors())
	}
	base := http.DefaultTransport
	if got := tracing.Transport(base, tr.Provider()); got != base {
		t.Fatalf("the HTTP transport is wrapped with tracing off: %T", got)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, span := tracing.Start(context.Background(), "hash")
	if span.IsRecording() || ctx != context.Background() {
		t.Fatal("a span is recorded with tracing off")
	}
}

func TestTracingEndpointTurnsItOn(t *testing.T) {
	for _, tc := range []struct {
		env map[string]string
		on  bool
		bad string
	}{
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"}},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "zipkin"}, bad: "OTEL_TRACES_EXPORTER=zipkin"},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, bad: "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			clearOTel(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tr, err := tracing.Setup(context.Background(), tracing.Config{Service: tracing.WorkerService, Role: "fetch"})
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("Setup: %v, want an error naming %s", err, tc.bad)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(context.Background())
			if tr.Enabled() != tc.on || (len(tr.Interceptors()) == 1) != tc.on {
				t.Fatalf("enabled %v with %d interceptors, want on %v", tr.Enabled(), len(tr.Interceptors()), tc.on)
			}
		})
	}
}

// site serves /page/N with a body of N*1000 bytes and notes the headers
// every request came with.
type site struct {
	mu      sync.Mutex
	headers []http.Header
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	s.mu.Unlock()
	var n int
	if _, err := fmt.Sscanf(r.URL.Path, "/page/%d", &n); err != nil {
		http.NotFound(w, r)
		return
	}
	_, _ = io.WriteString(w, strings.Repeat("x", n*1000))
}

// attrs maps a span's attributes by key.
func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes {
		m[a.Key] = a.Value
	}
	return m
}

func TestHTTPSpanPerRequestHidesThePathQueryAndHeaders(t *testing.T) {
	s := &site{}
	srv := httptest.NewServer(s)
	defer srv.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	hc := &http.Client{Transport: tracing.Transport(http.DefaultTransport.(*http.Transport).Clone(), tp)}

	get := func(ctx context.Context, path string, read int64) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer header-secret-value")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if read < 0 {
			_, _ = io.Copy(io.Discard, resp.Body)
		} else {
			_, _ = io.CopyN(io.Discard, resp.Body, read)
		}
		resp.Body.Close()
	}
	// Within an activity's span: one span per request.
	ctx, parent := tp.Tracer("test").Start(context.Background(), "RunActivity:FetchURL")
	get(tracing.WithAttempt(ctx, 3, 2), "/page/5?sig=query-secret-value", -1)
	get(tracing.WithAttempt(ctx, 4, 1), "/page/7", 100) // closed after 100 bytes
	get(ctx, "/missing", -1)
	parent.End()
	// Outside any span (robots.txt, shared by URLs): no span at all.
	get(context.Background(), "/page/1", -1)

	var spans []tracetest.SpanStub
	for _, sp := range exp.GetSpans() {
		if sp.Name != "RunActivity:FetchURL" {
			spans = append(spans, sp)
		}
	}
	if len(spans) != 3 {
		t.Fatalf("%d HTTP spans, want 3 (one per request made in the activity's span): %v", len(spans), spans)
	}
	want := []map[attribute.Key]any{
		{"server.address": "127.0.0.1", "http.response.status_code": int64(200), "http.response.body.size": int64(5000), "batchfetch.attempt": int64(2), "batchfetch.url.index": int64(3), "url.scheme": "http", "http.request.method": "GET"},
		{"http.response.status_code": int64(200), "http.response.body.size": int64(100), "batchfetch.attempt": int64(1), "batchfetch.url.index": int64(4)},
		{"http.response.status_code": int64(404)},
	}
	for i, sp := range spans {
		if sp.Parent.SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %d (%s) is not a child of the activity's span", i, sp.Name)
		}
		got := attrs(sp)
		for k, v := range want[i] {
			if got[k].AsInterface() != v {
				t.Errorf("span %d: %s = %v, want %v (all: %v)", i, k, got[k].AsInterface(), v, sp.Attributes)
			}
		}
		for k, v := range got {
			if strings.HasPrefix(string(k), "url.full") || strings.Contains(v.Emit(), "secret-value") || strings.Contains(v.Emit(), "/page/") {
				t.Errorf("span %d records %s = %s", i, k, v.Emit())
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.headers {
		if h.Get("Traceparent") != "" || h.Get("Baggage") != "" {
			t.Errorf("a fetched server was sent trace headers: %v", h)
		}
	}
}

func TestScrubCutsURLsToTheirHost(t *testing.T) {
	for in, want := range map[string]string{
		"HTTP 503 Service Unavailable": "HTTP 503 Service Unavailable",
		`batch failed at urls[2] https://user:pw@api.example.com:8443/v1/x?token=abc: HTTP 404`: `batch failed at urls[2] https://api.example.com:8443/…: HTTP 404`,
		`Get "http://example.org/?q=1": EOF`:                                                    `Get "http://example.org/…": EOF`,
		"see http://example.org/ and ftp://h/":                                                  "see http://example.org and ftp://h",
	} {
		if got := tracing.Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}
