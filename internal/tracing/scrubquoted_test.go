package tracing_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batchfetch/batchfetch/internal/tracing"
)

// A redirect's Location that does not parse is quoted in the error, and
// may be relative: its path and query are cut as a URL's are.
func TestScrubCutsQuotedReferences(t *testing.T) {
	for in, want := range map[string]string{
		`Get "http://127.0.0.1:1/rel": failed to parse Location header "/p%zz?token=abc": parse "/p%zz?token=abc": invalid URL escape "%zz"`: `Get "http://127.0.0.1:1/…": failed to parse Location header "/…": parse "/…": invalid URL escape "%zz"`,
		`failed to parse Location header "p%zz?token=abc def"`:                                                                               `failed to parse Location header "/…"`,
		`Get "http://h/?tok=abc def": EOF`:                                                                                                   `Get "http://h/…": EOF`,
		`Get "http://h/a\"tok=abc": EOF`:                                                                                                     `Get "http://h/…": EOF`,
		`failed to parse Location header "/p%zz?token=abc …`:                                                                                 `failed to parse Location header "/…`,
		`Get "http://h/p?token=abc …`:                                                                                                        `Get "http://h/…`,
		`urls[0]: "h/x?token=abc" is not an absolute URL (want http:// or https://)`:                                                         `urls[0]: "/…" is not an absolute URL (want http:// or https://)`,
		`malformed HTTP status code "abc"`:                                                                                                   `malformed HTTP status code "abc"`,
	} {
		if got := tracing.Scrub(in); got != want {
			t.Errorf("Scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

// An HTTP span's status is the request's error, which may quote what the
// server sent: a URL in it is cut to its host.
func TestHTTPSpanStatusIsScrubbed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				// A broken server echoes the URL asked for as its status.
				_, _ = io.WriteString(conn, "HTTP/1.1 http://"+req.Host+req.URL.RequestURI()+"\r\n\r\n")
			}()
		}
	}()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	hc := &http.Client{Transport: tracing.Transport(http.DefaultTransport.(*http.Transport).Clone(), tp)}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "RunActivity:FetchURL")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Addr().String()+"/p?token=query-secret-value", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := hc.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a malformed response was read")
	}
	parent.End()
	for _, s := range exp.GetSpans() {
		if strings.Contains(s.Status.Description, "secret") {
			t.Errorf("span %s: status %q", s.Name, s.Status.Description)
		}
		for _, e := range s.Events {
			for _, a := range e.Attributes {
				if strings.Contains(a.Value.Emit(), "secret") {
					t.Errorf("span %s: event %s %s = %s", s.Name, e.Name, a.Key, a.Value.Emit())
				}
			}
		}
	}
}
