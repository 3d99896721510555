package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
)

// urlHostGate holds a one-URL activity's requests to its host's pace as
// a chunk's are: a small batch without a per_host rule of its own (one
// with it runs chunks) under the worker's per-host defaults, or paced by
// robots.txt's Crawl-delay. Nil when nothing paces the host. Call it
// after the URL's robots.txt was read: its Crawl-delay is known.
func (f *Fetcher) urlHostGate(req FetchURLRequest, deadline time.Time) *hostGate {
	rule, ok := f.hostRule(req.Policy)
	if !ok {
		return nil
	}
	limits := f.hostLimits()
	limits.SetRule(req.Prefix, rule)
	limits.SetAttemptTimeout(req.Prefix, req.Policy.AttemptTimeout)
	g := &hostGate{limits: limits, batch: req.Prefix, host: hostOf(req.Task.URL), pauses: f.hostPauses(), deadline: deadline}
	f.crawlDelay(g, req.Task.URL, req.Task.R, req.Policy)
	return g
}

// hostTurn waits for the URL's turn at its host. A host that will take
// it only past its url_timeout ends it now (final, as in a chunk); a
// context that ends first gives ctx's error.
func (f *Fetcher) hostTurn(ctx context.Context, g *hostGate, out Fetched) (release func(), final error, err error) {
	release, err = g.start(ctx)
	var late *hostTooLate
	if errors.As(err, &late) {
		word := finish(out, late.fail)
		observer(f.Observer).Fetched(0, time.Duration(word.ElapsedMS)*time.Millisecond)
		observer(f.Observer).URLDone(word.Outcome)
		return nil, temporal.NewApplicationErrorWithOptions(word.Error, TimeoutType, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{word}}), nil
	}
	return release, nil, err
}
