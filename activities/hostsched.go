package activities

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/politeness"
)

// FetchChunkPerHost is the name batches with a per_host rule call
// FetchChunk by: only workers that keep the rule have it, so such a batch
// never runs on a worker that would ignore its rule.
const FetchChunkPerHost = "FetchChunkPerHost"

// hostRule is the per-host rule a chunk's URLs go by: the batch's, its
// zero fields taken from the worker's defaults. ok is false when neither
// limits anything: the chunk starts its URLs in order, as without rules.
func (f *Fetcher) hostRule(p Policy) (politeness.Rule, bool) {
	var r politeness.Rule
	if p.PerHost != nil {
		r = *p.PerHost
	}
	r = r.Or(f.PerHost)
	return r, r.Limits()
}

// hostLimits is the worker's HostLimits (one with the defaults, sharing
// with no other worker, when none was given).
func (f *Fetcher) hostLimits() *politeness.HostLimits {
	f.limitsOnce.Do(func() {
		if f.Limits == nil {
			f.Limits = politeness.New(politeness.Config{})
		}
	})
	return f.Limits
}

// hostOf is the host a URL's rule applies to: its lower-cased host name
// (every port of a host is one host).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// hostGate holds a URL's requests to the pace of its host's rule.
type hostGate struct {
	limits      *politeness.HostLimits
	batch, host string
	// first is the start the chunk took for the URL's first request.
	first func()
}

// start waits until the host takes another request, and returns its
// release.
func (g *hostGate) start(ctx context.Context) (release func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	if g.first != nil {
		release, g.first = g.first, nil
		return release, nil
	}
	for {
		freed := g.limits.Released()
		release, wait, ok := g.limits.TryStart(g.batch, g.host)
		if ok {
			return release, nil
		}
		if wait <= 0 {
			wait = hostRecheck
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-freed:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// drop gives back the chunk's start when the URL will not use it.
func (g *hostGate) drop() {
	if g != nil && g.first != nil {
		g.first()
		g.first = nil
	}
}

// paused stops the host for this worker when a 429 or 503 said when to
// come back (Retry-After).
func (g *hostGate) paused(fail *failure) {
	if g == nil || fail == nil || fail.delay <= 0 {
		return
	}
	if fail.status == http.StatusTooManyRequests || fail.status == http.StatusServiceUnavailable {
		g.limits.Pause(g.batch, g.host, time.Now().Add(fail.delay))
	}
}

// crawlDelay lowers the host's rate to its robots.txt Crawl-delay, for a
// batch that obeys robots.txt (whose robots.txt has been read by now).
func (f *Fetcher) crawlDelay(g *hostGate, rawURL string, r *Request, p Policy) {
	if g == nil || p.Robots != RobotsObey {
		return
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return
	}
	ua, _ := f.agentOf(r)
	if d, ok := f.robots().CrawlDelay(origin(u), ua); ok {
		g.limits.SetCrawlDelay(g.batch, g.host, d)
	}
}
