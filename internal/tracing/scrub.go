package tracing

import (
	"context"
	"net/url"
	"reflect"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// urlPattern finds URLs in a message.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// Scrub is msg with every URL in it cut to its scheme and host
// ("https://example.com/…"): an error that names a URL (a fail_fast
// batch's, a refused input's) keeps its path, query and userinfo out of
// the trace.
func Scrub(msg string) string {
	if !strings.Contains(msg, "://") {
		return msg
	}
	return urlPattern.ReplaceAllStringFunc(msg, func(raw string) string {
		trimmed := strings.TrimRight(raw, ".,:;!?)]}")
		tail := raw[len(trimmed):] // punctuation after the URL, kept
		u, err := url.Parse(trimmed)
		if err != nil || u.Host == "" {
			return "[URL]" + tail
		}
		out := u.Scheme + "://" + u.Host
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			out += "/…"
		}
		return out + tail
	})
}

// startScrubbed starts the Temporal interceptor's spans: their errors
// (a failed workflow's or activity's message, which may name a URL) are
// recorded scrubbed.
func startScrubbed(ctx context.Context, t trace.Tracer, name string, opts ...trace.SpanStartOption) trace.Span {
	_, span := t.Start(ctx, name, opts...)
	return scrubbedErrors{span}
}

// scrubbedErrors records errors and statuses with their URLs scrubbed.
type scrubbedErrors struct{ trace.Span }

// RecordError records err as the SDK does (an "exception" event), its
// message scrubbed.
func (s scrubbedErrors) RecordError(err error, opts ...trace.EventOption) {
	if err == nil {
		return
	}
	opts = append(opts, trace.WithAttributes(attribute.String("exception.type", typeName(err)), attribute.String("exception.message", Scrub(err.Error()))))
	s.Span.AddEvent("exception", opts...)
}

func (s scrubbedErrors) SetStatus(code codes.Code, description string) {
	s.Span.SetStatus(code, Scrub(description))
}

// typeName is an error's type, as the SDK names it in exception.type.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.PkgPath() == "" && t.Name() == "" {
		return t.String()
	}
	return t.PkgPath() + "." + t.Name()
}
