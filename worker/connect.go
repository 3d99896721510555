package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Backoff between connection attempts: it doubles from the first to the
// last and stays there.
const (
	firstRetry = time.Second
	lastRetry  = 30 * time.Second
)

// connect dials Temporal and checks that the namespace exists, retrying
// both until they succeed, ctx ends, or timeout passes (0: no limit). A
// worker started before its server, or before the job that registers its
// namespace, waits and says so, instead of exiting and crash-looping
// under its supervisor.
func connect(ctx context.Context, opts client.Options, timeout time.Duration, logger *zap.Logger) (client.Client, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if _, _, err := net.SplitHostPort(opts.HostPort); err != nil {
		return nil, fmt.Errorf("TEMPORAL_ADDRESS %q is not host:port: %w", opts.HostPort, err)
	}
	wait := firstRetry
	var last error // the last failure not caused by ctx ending
	for attempt := 1; ; attempt++ {
		c, err := dialOnce(ctx, opts)
		if err == nil {
			if attempt > 1 {
				logger.Info("connected to Temporal", zap.String("address", opts.HostPort), zap.String("namespace", opts.Namespace), zap.Int("attempts", attempt))
			}
			return c, nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("Temporal at %s (namespace %s) not ready after %s (--connect-timeout): %w", opts.HostPort, opts.Namespace, timeout, last)
			}
			return nil, fmt.Errorf("stopped while waiting for Temporal at %s (namespace %s): %w", opts.HostPort, opts.Namespace, last)
		}
		if permanent(err) {
			// Waiting will not change a refused credential or a TLS
			// mismatch: say so now, and let the supervisor show it.
			return nil, fmt.Errorf("connecting to Temporal at %s (namespace %s): %w", opts.HostPort, opts.Namespace, err)
		}
		fields := []zap.Field{zap.String("address", opts.HostPort), zap.String("namespace", opts.Namespace),
			zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err)}
		if strings.Contains(err.Error(), "server preface") && opts.ConnectionOptions.TLS == nil {
			// A TLS server hangs up on a plaintext client this way.
			fields = append(fields, zap.String("hint", "if the server uses TLS, set TEMPORAL_TLS=true (or the TLS certificate variables)"))
		}
		logger.Warn("waiting for Temporal", fields...)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, lastRetry)
	}
}

// permanent tells whether a failure to connect is one that waiting does
// not cure: credentials refused, a request the server calls invalid, or
// a TLS handshake that fails (TLS against a plaintext server, a
// certificate not trusted). An unreachable server, one still starting,
// or a namespace not registered yet are retried.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return true
	}
	msg := err.Error()
	for _, s := range []string{"tls: ", "x509: "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// dialOnce is one attempt: the dial (which checks the server's health) and
// the namespace.
func dialOnce(ctx context.Context, opts client.Options) (client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		return nil, err
	}
	_, err = c.WorkflowService().DescribeNamespace(dctx, &workflowservice.DescribeNamespaceRequest{Namespace: opts.Namespace})
	if err != nil {
		c.Close()
		var nf *serviceerror.NamespaceNotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("namespace %q does not exist (yet): register it, for example with `temporal operator namespace create -n %s`", opts.Namespace, opts.Namespace)
		}
		return nil, err
	}
	return c, nil
}
