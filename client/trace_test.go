package client_test

import (
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

// With a TracerProvider and a Temporal client dialed with the tracing
// interceptor, a batch is one trace: Start's span is its root, and every
// request and hash is under it.
func TestStartIsTheRootOfTheBatchsTrace(t *testing.T) {
	ctx := testCtx(t)
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
	pools, err := workers.Start(tc, workers.Config{TaskQueue: "traced", CPUTaskQueue: "traced-cpu", Store: stack.Store, FetchSlots: 10, CPUSlots: 1,
		HTTP: activities.ClientConfig{Guard: activities.Guard{Allow: []string{"127.0.0.1"}}, TracerProvider: tr.Provider()}, Deployment: workers.Deployment{Unversioned: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Stop()
	c, err := client.New(client.Options{Temporal: tc, Store: stack.Store, TaskQueue: "traced", CPUTaskQueue: "traced-cpu", TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{site.URL + "/a?key=query-secret", site.URL + "/b"}
	b, err := c.Start(ctx, workflows.Input{URLs: urls}, client.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := b.Wait(ctx); err != nil || out.OK != len(urls) {
		t.Fatalf("batch: %+v, %v", out, err)
	}
	pools.Stop()

	spans := exp.GetSpans()
	byID := map[string]tracetest.SpanStub{}
	var root tracetest.SpanStub
	for _, s := range spans {
		byID[s.SpanContext.SpanID().String()] = s
		if s.Name == "start batch" {
			root = s
		}
	}
	if root.Name == "" || root.Parent.IsValid() {
		t.Fatalf("no root span of Start: %v", root)
	}
	count := map[string]int{}
	for _, s := range spans {
		if s.Name != "HTTP GET" && s.Name != "hash" {
			continue
		}
		for _, a := range s.Attributes {
			if a.Key == "url.full" || a.Key == "url.query" {
				t.Errorf("%s span records %s = %s", s.Name, a.Key, a.Value.Emit())
			}
		}
		path, p := s.Name, s
		for p.Parent.IsValid() {
			next, ok := byID[p.Parent.SpanID().String()]
			if !ok {
				path += " < ? (not exported)"
				break
			}
			p = next
			path += " < " + p.Name
		}
		if p.SpanContext.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("%s is not under Start's span: %s", s.Name, path)
			continue
		}
		count[s.Name]++
	}
	if count["HTTP GET"] != len(urls) || count["hash"] != len(urls) {
		t.Errorf("under Start's span: %v; want %d HTTP GET and %d hash", count, len(urls), len(urls))
	}
}
