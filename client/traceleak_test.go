package client_test

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	sdkclient "go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/tracing"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

type mapSecrets map[string]string

func (m mapSecrets) Secret(name string) (string, []string, bool, error) {
	v, ok := m[name]
	return v, nil, ok, nil
}
func (m mapSecrets) Where(name string) string { return "BATCHFETCH_SECRET_" + name }

// serve runs h on a listener of addr (loopback) until the test ends.
func serve(t *testing.T, addr string, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// No secret of a batch's URLs, its headers or the worker's secrets gets
// into a span, whatever error a request ends in; no trace header goes
// to a fetched site; the guard blocks 127.0.0.2, also through a redirect.
func TestNoSecretInSpans(t *testing.T) {
	ctx := testCtx(t)
	var blockedHits atomic.Int64
	blocked := serve(t, "127.0.0.2:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		blockedHits.Add(1)
		_, _ = io.WriteString(w, "must not be fetched")
	}))
	var mu sync.Mutex
	var seen []http.Header
	base := serve(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Clone())
		mu.Unlock()
		switch r.URL.Path {
		case "/robots.txt":
			http.Redirect(w, r, "/robots-moved?token=SECRET-ROBOTS", http.StatusFound)
		case "/rel":
			w.Header().Set("Location", "/p%zz?token=SECRET-REL")
			w.WriteHeader(http.StatusFound)
		case "/long-rel": // its error is cut in the middle of the quoted Location
			w.Header().Set("Location", "/p%zz?token=SECRET-LONG"+strings.Repeat("a", 4000))
			w.WriteHeader(http.StatusFound)
		case "/to-blocked":
			http.Redirect(w, r, blocked+"/x?token=SECRET-GUARD", http.StatusFound)
		default:
			_, _ = io.WriteString(w, "page "+r.URL.Path)
		}
	}))
	// A certificate no worker trusts: the request ends in a TLS error.
	tlsSite := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tlsSite.Config.ErrorLog = log.New(io.Discard, "", 0)
	tlsSite.StartTLS()
	defer tlsSite.Close()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr, err := tracing.WithProvider(tp)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)
	tc, err := sdkclient.NewClientFromExisting(stack.Client, sdkclient.Options{Namespace: "default", Interceptors: tr.Interceptors(), Logger: logging.SDK(zap.NewNop())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	pools, err := workers.Start(tc, workers.Config{TaskQueue: "leak", CPUTaskQueue: "leak-cpu", Store: stack.Store, FetchSlots: 10, CPUSlots: 1,
		Secrets: mapSecrets{"TOKEN": "SECRET-WORKER"},
		HTTP:    activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}, TracerProvider: tr.Provider()}, Deployment: workers.Deployment{Unversioned: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Stop()
	c, err := client.New(client.Options{Temporal: tc, Store: stack.Store, TaskQueue: "leak", CPUTaskQueue: "leak-cpu", TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	withUser := strings.Replace(base, "http://", "http://user:SECRET-PW@", 1)
	urls := []string{
		base + "/ok?token=SECRET-Q",
		base + "/rel",
		base + "/long-rel",
		base + "/to-blocked",
		blocked + "/direct?token=SECRET-DIRECT",
		base + "/ok#SECRET-FRAG",
		tlsSite.URL + "/tls?token=SECRET-TLS",
	}
	headers := map[string]activities.HeaderValue{
		"X-Api-Key":     {Value: "${secret:TOKEN}"},
		"Authorization": {Value: "Bearer SECRET-LITERAL"},
	}
	// Refused: its span says why, without the password.
	if _, err := c.Start(ctx, workflows.Input{URLs: []string{withUser + "/ok?token=SECRET-Q"}}, client.StartOptions{}); err == nil {
		t.Fatal("a URL with a password was accepted")
	}
	b, err := c.Start(ctx, workflows.Input{URLs: urls, MaxAttempts: 1, Robots: "obey", RequestFields: activities.RequestFields{Headers: headers}}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pools.Stop()
	for r, err := range b.Results(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s %d %s", tracing.Scrub(r.URL), r.Outcome, r.Status, r.Error)
	}
	t.Logf("%d ok of %d", out.OK, out.Total)
	if n := blockedHits.Load(); n != 0 {
		t.Errorf("the server on 127.0.0.2 was fetched %d times with tracing on", n)
	}
	for _, s := range exp.GetSpans() {
		var texts []string
		texts = append(texts, "name="+s.Name, "status="+s.Status.Description)
		for _, a := range s.Attributes {
			texts = append(texts, string(a.Key)+"="+a.Value.Emit())
		}
		for _, e := range s.Events {
			for _, a := range e.Attributes {
				texts = append(texts, e.Name+"."+string(a.Key)+"="+a.Value.Emit())
			}
		}
		for _, text := range texts {
			if strings.Contains(text, "SECRET") {
				t.Errorf("span %q holds a secret: %s", s.Name, text)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, h := range seen {
		if h.Get("Traceparent") != "" || h.Get("Tracestate") != "" || h.Get("Baggage") != "" {
			t.Errorf("a fetched site was sent trace headers: %v", h)
		}
	}
}
