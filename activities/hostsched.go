package activities

import (
	"context"
	"net/http"
	"net/url"
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
	if !r.Limits() && p.Robots == RobotsObey {
		// No rule but robots.txt's: a Crawl-delay lowers this rate.
		r.Rate = politeness.MaxRate
	}
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

// hostOf is the host a URL's rule applies to, whatever its spelling
// (hostKey); every port of a host is one host.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return hostKey(u.Hostname())
}

// hostGate holds a URL's requests to the pace of its host's rule.
type hostGate struct {
	limits      *politeness.HostLimits
	batch, host string
	// first is the start the chunk took for the URL's first request.
	first func()
	// readsRobots: the URL went ahead before its host's robots.txt was
	// known; should it give a Crawl-delay, first is taken again under it.
	readsRobots bool
	// pauses shares the host's pauses with the batch's other workers.
	pauses *hostPauses
	// board hears of the URL's waits for its host (nil: none).
	board *hostBoard
	// deadline is the end of the URL's url_timeout (zero: none): a host
	// that takes the URL only past it ends it at once (hostTooLate).
	deadline time.Time
}

// start waits until the host takes another request, and returns its
// release; a *hostTooLate when that would be past the URL's url_timeout.
func (g *hostGate) start(ctx context.Context) (release func(), err error) {
	if g == nil {
		return func() {}, nil
	}
	if g.first != nil {
		release, g.first = g.first, nil
		return release, nil
	}
	turn := g.board.turn(g.host)
	defer turn.end()
	defer g.wanting()()
	for {
		g.pauses.refresh(ctx, g.batch, func() []string { return []string{g.host} })
		freed := g.limits.Released()
		release, wait, ok := g.limits.TryStart(g.batch, g.host)
		if ok {
			turn.took()
			return release, nil
		}
		turn.refused()
		if fail := tooLate(g.limits, g.batch, g.host, wait, g.deadline); fail != nil {
			return nil, &hostTooLate{fail}
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

// paused stops the host for the batch, on this worker and (through the
// blob store) the others, after a 429 or 503: until its Retry-After, or
// for the URL's own backoff (backoff) when it gave none.
func (g *hostGate) paused(fail *failure, backoff time.Duration) {
	if g == nil || fail == nil {
		return
	}
	d := fail.delay
	if d <= 0 {
		d = backoff
	}
	if d <= 0 {
		return
	}
	if fail.status == http.StatusTooManyRequests || fail.status == http.StatusServiceUnavailable {
		until := time.Now().Add(pauseFor(d))
		g.limits.Pause(g.batch, g.host, until)
		g.pauses.publish(g.batch, g.host, until)
	}
}

// crawlDelay lowers the host's rate to its robots.txt Crawl-delay, for a
// batch that obeys robots.txt (whose robots.txt has been read by now). A
// URL that went ahead before it was known waits its turn again under it.
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
		if g.readsRobots {
			g.drop()
		}
	}
	g.readsRobots = false
}

// robotsFirst holds back a host's URLs, in a batch that obeys robots.txt,
// while the first of them reads the host's robots.txt: the Crawl-delay it
// may give paces the others from their first request.
type robotsFirst struct {
	f               *Fetcher
	origins, agents []string       // by position
	reading         map[string]int // host -> the URL reading its robots.txt
}

// newRobotsFirst is nil for a batch that does not obey robots.txt.
func (c *chunkRun) newRobotsFirst() *robotsFirst {
	if c.req.Policy.Robots != RobotsObey {
		return nil
	}
	r := &robotsFirst{f: c.f, origins: make([]string, len(c.tasks)), agents: make([]string, len(c.tasks)), reading: map[string]int{}}
	for i, t := range c.tasks {
		if u, err := url.Parse(t.URL); err == nil && u.Host != "" {
			r.origins[i] = origin(u)
		}
		r.agents[i], _ = c.f.agentOf(t.R)
	}
	return r
}

// hold tells whether the URL at i waits for its host's robots.txt, being
// read by another URL; once it is known, its Crawl-delay paces the host.
func (r *robotsFirst) hold(c *chunkRun, limits *politeness.HostLimits, batch, host string, i int) bool {
	if r == nil || r.origins[i] == "" {
		return false
	}
	if r.f.robots().cached(r.origins[i]) != nil {
		if d, ok := r.f.robots().CrawlDelay(r.origins[i], r.agents[i]); ok {
			limits.SetCrawlDelay(batch, host, d)
		}
		return false
	}
	p, ok := r.reading[host]
	return ok && c.isRunning(p)
}

// started notes that the URL at i went ahead, and tells whether it
// reads its host's robots.txt (none is known yet).
func (r *robotsFirst) started(host string, i int) bool {
	if r != nil && r.origins[i] != "" && r.f.robots().cached(r.origins[i]) == nil {
		r.reading[host] = i
		return true
	}
	return false
}

// isRunning tells whether the URL at position i is under way.
func (c *chunkRun) isRunning(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.running[c.tasks[i].Index]
	return ok
}
