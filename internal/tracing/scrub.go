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

// quoted finds a quoted string in a message, as Go quotes one (%q), or
// one a cut message (TruncateError's) left open at its end.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*(?:"|$)`)

// Scrub is msg with every URL in it cut to its scheme and host
// ("https://example.com/…"), and every quoted relative reference (a
// redirect's Location, "/p?token=…") to "/…": an error that names a URL
// (a fail_fast batch's, a refused input's, a redirect's) keeps its path,
// query and userinfo out of the trace.
func Scrub(msg string) string {
	if strings.Contains(msg, `"`) {
		msg = quoted.ReplaceAllStringFunc(msg, scrubQuoted)
	}
	if strings.Contains(msg, "://") {
		msg = scrubURLs(msg)
	}
	return msg
}

// scrubQuoted is a quoted string of a message, whole (spaces and all)
// cut to its host when it holds a URL, to "/…" when it is a path or has a
// query.
func scrubQuoted(q string) string {
	inner, end := q[1:], ""
	if len(q) > 1 && strings.HasSuffix(q, `"`) {
		inner, end = q[1:len(q)-1], `"`
	}
	switch {
	case strings.Contains(inner, "://"):
		u, err := url.Parse(strings.TrimSpace(inner))
		if err != nil || u.Host == "" || strings.ContainsAny(u.Host, `\ `) {
			return `"[URL]` + end
		}
		return `"` + cut(u) + end
	case strings.HasPrefix(inner, "/") || strings.Contains(inner, "?"):
		return `"/…` + end
	}
	return q
}

// scrubURLs cuts the URLs in msg to their scheme and host.
func scrubURLs(msg string) string {
	return urlPattern.ReplaceAllStringFunc(msg, func(raw string) string {
		trimmed := strings.TrimRight(raw, ".,:;!?)]}")
		tail := raw[len(trimmed):] // punctuation after the URL, kept
		if strings.HasSuffix(trimmed, "://") {
			return raw // a scheme named alone ("want http:// or https://")
		}
		u, err := url.Parse(trimmed)
		if err != nil || u.Host == "" {
			return "[URL]" + tail
		}
		return cut(u) + tail
	})
}

// cut is u's scheme and host, and "/…" when it had more.
func cut(u *url.URL) string {
	out := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		out += "/…"
	}
	return out
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
