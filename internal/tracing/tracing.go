// Package tracing sets up OpenTelemetry tracing for the starter and the
// workers. It is on only when an OTLP endpoint is configured the standard
// way (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
// otherwise nothing is traced and nothing costs: no provider, no
// interceptor, the HTTP client unwrapped.
//
// When on, the Temporal client carries the SDK's OpenTelemetry
// interceptor, so a batch is one trace: the starter's start, the workflow,
// each activity, and below them the spans this project adds (an HTTP
// request per attempt on the fetch worker, the hash and the CPU step on
// the CPU worker). Spans go out through the OTLP exporter, which reads
// the other OTEL_EXPORTER_OTLP_* variables itself (headers, timeout,
// TLS, compression); OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER and OTEL_BSP_* apply as the SDK defines them.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"

	"github.com/batchfetch/batchfetch/internal/buildinfo"
)

// Service names of the commands.
const (
	StarterService = "batchfetch-starter"
	WorkerService  = "batchfetch-worker"
)

// ScopeName is the instrumentation scope of the spans this project makes.
const ScopeName = "github.com/batchfetch/batchfetch"

// Config names the process in its traces.
type Config struct {
	// Service is the resource's service.name (OTEL_SERVICE_NAME wins).
	Service string
	// Role, when set, is the resource attribute batchfetch.role (the
	// worker's --role: fetch, cpu or all).
	Role string
}

// Tracing is a process's tracing: on with a provider, or off (the zero
// value, and a nil *Tracing, are off).
type Tracing struct {
	tp          *sdktrace.TracerProvider
	interceptor interceptor.Interceptor
}

// Wanted tells whether the environment asks for traces: an OTLP endpoint
// is set, and neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none
// says otherwise.
func Wanted() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")) == "none" {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
}

// Setup starts tracing as the environment says: off (a Tracing that does
// nothing) unless Wanted. An exporter setting it cannot use is an error,
// so a process asked for traces does not run silently without them.
func Setup(ctx context.Context, cfg Config) (*Tracing, error) {
	if !Wanted() {
		return &Tracing{}, nil
	}
	if e := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); e != "" && e != "otlp" {
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: only otlp (or none) is supported", e)
	}
	exp, err := exporter(ctx)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t, err := WithProvider(tp)
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, err
	}
	return t, nil
}

// WithProvider is tracing on tp, however it exports (Setup's exports over
// OTLP; a test's may keep spans in memory). Shutdown shuts tp down.
func WithProvider(tp *sdktrace.TracerProvider) (*Tracing, error) {
	ic, err := temporalotel.NewTracingInterceptor(temporalotel.TracerOptions{
		Tracer: tp.Tracer("temporal-sdk-go"),
		// The starter asks for a batch's progress every few seconds: a
		// trace each would bury the batch's own.
		DisableQueryTracing: true,
		SpanStarter:         startScrubbed,
	})
	if err != nil {
		return nil, err
	}
	return &Tracing{tp: tp, interceptor: ic}, nil
}

// exporter is the OTLP exporter of the protocol the environment names
// (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL):
// http/protobuf by default, as the specification has it, or grpc.
func exporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	name, proto := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		name, proto = "OTEL_EXPORTER_OTLP_PROTOCOL", os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	var err error
	switch strings.TrimSpace(proto) {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("%s=%s: want http/protobuf or grpc", name, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("the OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// newResource describes the process: its service, version and role, then
// what OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say (which win).
func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		attribute.String("service.name", cfg.Service),
		attribute.String("service.version", buildinfo.ID()),
	}
	if cfg.Role != "" {
		attrs = append(attrs, attribute.String("batchfetch.role", cfg.Role))
	}
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("the trace resource (OTEL_RESOURCE_ATTRIBUTES?): %w", err)
	}
	return res, nil
}

// Enabled tells whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.tp != nil }

// Provider is the tracer provider: the exporting one when on, nil when
// off (so that a caller can tell, and skip any wrapping).
func (t *Tracing) Provider() trace.TracerProvider {
	if !t.Enabled() {
		return nil
	}
	return t.tp
}

// Tracer makes the spans of this project: a no-op one when off.
func (t *Tracing) Tracer() trace.Tracer {
	if !t.Enabled() {
		return noop.NewTracerProvider().Tracer(ScopeName)
	}
	return t.tp.Tracer(ScopeName)
}

// Interceptors are the Temporal client's (and so its workers'): the SDK's
// OpenTelemetry tracing interceptor when on, none when off.
func (t *Tracing) Interceptors() []interceptor.ClientInterceptor {
	if !t.Enabled() {
		return nil
	}
	return []interceptor.ClientInterceptor{t.interceptor}
}

// Shutdown exports the spans not yet sent and stops the exporter, within
// ctx. Call it once the process's work is done (after the workers have
// stopped). Off, it does nothing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.tp.Shutdown(ctx)
}
