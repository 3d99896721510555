package main

import (
	"context"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/tracing"
)

// startTracing starts the worker's tracing when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: service batchfetch-worker,
// its role a resource attribute. Off otherwise.
func startTracing(role string, logger *zap.Logger) (*tracing.Tracing, error) {
	tr, err := tracing.Setup(context.Background(), tracing.Config{Service: tracing.WorkerService, Role: role})
	if err != nil {
		return nil, err
	}
	if tr.Enabled() {
		endpoint := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		if endpoint == "" {
			endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		logger.Info("tracing on: spans go out over OTLP", zap.String("endpoint", activities.Redact(endpoint)))
	}
	return tr, nil
}

// stopTracing sends the spans not sent yet, giving up after a few seconds
// (a collector that is gone must not hold the worker's exit).
func stopTracing(tr *tracing.Tracing, logger *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		logger.Warn("tracing: spans not sent at shutdown", zap.Error(err))
	}
}
