package tracing

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Attributes of the spans this project adds.
const (
	AttrURLIndex = attribute.Key("batchfetch.url.index") // the URL's position in the batch
	AttrAttempt  = attribute.Key("batchfetch.attempt")   // the URL's attempt, the first is 1
	// AttrBodySize is the bytes of the response body read (an HTTP span),
	// or hashed (a hash span).
	AttrBodySize   = attribute.Key("http.response.body.size")
	AttrHashedSize = attribute.Key("batchfetch.body.size") // the bytes of a body hashed
	AttrProcess    = attribute.Key("batchfetch.process")   // the CPU step's name
	AttrOutcome    = attribute.Key("batchfetch.outcome")   // a result's outcome (ok, error, ...)
	AttrHost       = attribute.Key("server.address")       // a URL's host, never more of it
	AttrURLScheme  = attribute.Key("url.scheme")
)

// attemptKey carries the URL and attempt a request is made for.
type attemptKey struct{}

type attemptOf struct{ index, attempt int }

// WithAttempt marks ctx as the attempt-th attempt (the first is 1) at the
// batch's index-th URL: the HTTP spans of requests made with it say so.
// Outside any span (tracing off) it returns ctx as it is.
func WithAttempt(ctx context.Context, index, attempt int) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return context.WithValue(ctx, attemptKey{}, attemptOf{index: index, attempt: attempt})
}

// Transport wraps next, the fetch worker's transport (its guard, proxies
// and limits stay as they are, below), so that every request made within
// a traced activity has a client span of its own, from otelhttp: its
// method, host (server.address, server.port), status and protocol, plus
// url.scheme, the URL's index and attempt (WithAttempt) and the bytes of
// the body read. The span never holds the URL's path, query or
// userinfo (otelhttp's url.full is dropped), nor any header; and no
// trace header goes to the fetched servers. A request made outside any
// span (robots.txt, shared between URLs) is not traced. tp nil: next as
// it is.
func Transport(next http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	if tp == nil {
		return next
	}
	return &transport{base: next, traced: otelhttp.NewTransport(annotate{next: next},
		otelhttp.WithTracerProvider(scrubbed{tp}),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
	)}
}

// transport is the outer layer: it keeps requests outside any trace
// untraced, and records the body's size before otelhttp ends the span on
// Close.
type transport struct {
	base   http.RoundTripper
	traced http.RoundTripper // otelhttp, around annotate, around base
}

// holdKey carries a request's hold from transport to annotate.
type holdKey struct{}

// hold is what annotate learned of a request's span, for its body.
type hold struct {
	span trace.Span
	read atomic.Int64
	once sync.Once
}

// record sets the bytes read on the span, once: at the body's end, or
// when it is closed first.
func (h *hold) record() {
	h.once.Do(func() {
		if h.span != nil {
			h.span.SetAttributes(AttrBodySize.Int64(h.read.Load()))
		}
	})
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(req.Context()).IsValid() {
		return t.base.RoundTrip(req)
	}
	h := &hold{}
	req = req.WithContext(context.WithValue(req.Context(), holdKey{}, h))
	resp, err := t.traced.RoundTrip(req)
	if err != nil || resp == nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &closeBody{ReadCloser: resp.Body, h: h}
	return resp, nil
}

// CloseIdleConnections lets the worker release its pool on shutdown.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// closeBody records the size read before otelhttp's body ends the span.
type closeBody struct {
	io.ReadCloser
	h *hold
}

func (b *closeBody) Close() error {
	b.h.record()
	return b.ReadCloser.Close()
}

// annotate runs inside otelhttp's span: it adds this project's
// attributes and counts the body's bytes.
type annotate struct{ next http.RoundTripper }

func (a annotate) RoundTrip(req *http.Request) (*http.Response, error) {
	span := trace.SpanFromContext(req.Context())
	attrs := []attribute.KeyValue{AttrURLScheme.String(req.URL.Scheme)}
	if at, ok := req.Context().Value(attemptKey{}).(attemptOf); ok {
		attrs = append(attrs, AttrURLIndex.Int(at.index), AttrAttempt.Int(at.attempt))
	}
	span.SetAttributes(attrs...)
	resp, err := a.next.RoundTrip(req)
	h, _ := req.Context().Value(holdKey{}).(*hold)
	if err != nil || resp == nil || resp.Body == nil || h == nil {
		return resp, err
	}
	h.span = span
	resp.Body = &countBody{ReadCloser: resp.Body, h: h}
	return resp, nil
}

// countBody counts what is read, and records it at the end of the body
// (otelhttp ends the span when its read sees io.EOF, just after).
type countBody struct {
	io.ReadCloser
	h *hold
}

func (b *countBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.h.read.Add(int64(n))
	if err == io.EOF {
		b.h.record()
	}
	return n, err
}

// scrubbed is a tracer provider whose spans drop the attributes that
// could hold a secret: the URL beyond its host, and headers.
type scrubbed struct{ trace.TracerProvider }

func (p scrubbed) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return scrubbedTracer{p.TracerProvider.Tracer(name, opts...)}
}

type scrubbedTracer struct{ trace.Tracer }

func (t scrubbedTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, s := t.Tracer.Start(ctx, name, opts...)
	span := scrubbedSpan{s}
	return trace.ContextWithSpan(ctx, span), span
}

type scrubbedSpan struct{ trace.Span }

func (s scrubbedSpan) SetAttributes(kv ...attribute.KeyValue) {
	kept := kv[:0:0]
	for _, a := range kv {
		if !secretive(a.Key) {
			kept = append(kept, a)
		}
	}
	s.Span.SetAttributes(kept...)
}

// SetStatus records the status with the URLs in its description cut to
// their host: otelhttp's is the error of the request, which may quote
// what the server sent.
func (s scrubbedSpan) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, Scrub(description))
}

// RecordError records err as scrubbedErrors does.
func (s scrubbedSpan) RecordError(err error, opts ...trace.EventOption) {
	scrubbedErrors{s.Span}.RecordError(err, opts...)
}

// secretive tells the attributes never recorded: the whole URL, its path,
// query and fragment (a token may be in any), the user agent (a batch's
// own may name a secret), and any header.
func secretive(k attribute.Key) bool {
	switch k {
	case "url.full", "url.path", "url.query", "url.fragment", "url.original", "user_agent.original", "http.url", "http.target":
		return true
	}
	return strings.HasPrefix(string(k), "http.request.header.") || strings.HasPrefix(string(k), "http.response.header.")
}
