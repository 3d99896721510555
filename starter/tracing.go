package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/batchfetch/batchfetch/internal/tracing"
)

// startTracing starts the starter's tracing when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: service
// batchfetch-starter (with --dev, the whole stack in this process, role
// dev). Off otherwise.
func startTracing(dev bool) (*tracing.Tracing, error) {
	cfg := tracing.Config{Service: tracing.StarterService}
	if dev {
		cfg.Role = "dev"
	}
	return tracing.Setup(context.Background(), cfg)
}

// stopTracing sends the spans not sent yet, giving up after a few
// seconds (a collector that is gone must not hold the exit).
func stopTracing(tr *tracing.Tracing, stderr io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		fmt.Fprintf(stderr, "tracing: spans not sent: %v\n", err)
	}
}
