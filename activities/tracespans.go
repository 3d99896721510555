package activities

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/batchfetch/batchfetch/internal/tracing"
	"github.com/batchfetch/batchfetch/process"
)

// startHash starts the span of one body's hash (and of the CPU step fed
// by the same read), a child of the hash activity's span: the URL's index
// and host, and the step's name. Without tracing it costs nothing.
func startHash(ctx context.Context, req HashChunkRequest, it Fetched) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	step := req.Process
	if step == "" {
		step = process.SHA256
	}
	return tracing.Start(ctx, "hash", tracing.AttrURLIndex.Int(it.Index), tracing.AttrHost.String(tracing.Host(it.URL)),
		tracing.AttrProcess.String(step))
}

// endHash ends a hash span with what came of the body: its outcome and
// the bytes hashed, or the error that retries the chunk.
func endHash(span trace.Span, r Result, stopped bool, err error) {
	if !span.IsRecording() {
		return
	}
	switch {
	case err != nil:
		span.SetStatus(codes.Error, tracing.Scrub(err.Error()))
	case stopped:
		span.SetAttributes(tracing.AttrOutcome.String(OutcomeCanceled))
		span.SetStatus(codes.Error, "stopped")
	default:
		span.SetAttributes(tracing.AttrOutcome.String(r.Outcome), tracing.AttrHashedSize.Int64(r.Size))
		if r.Outcome != OutcomeOK {
			span.SetStatus(codes.Error, tracing.Scrub(r.Error))
		}
	}
	span.End()
}

// endSpan ends a span, failed when err is set.
func endSpan(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, tracing.Scrub(TruncateError(err.Error())))
	}
	span.End()
}
