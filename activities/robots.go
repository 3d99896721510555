package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/temoto/robotstxt"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"golang.org/x/sync/singleflight"

	"github.com/batchfetch/batchfetch/internal/buildinfo"
)

// What a batch does about robots.txt (its robots field, Policy.Robots).
const (
	// RobotsObey fetches each host's /robots.txt (once per host, cached)
	// and ends every URL it disallows for the batch's User-Agent with
	// OutcomeRobotsDisallowed, without requesting it.
	RobotsObey = "obey"
	// RobotsIgnore fetches every URL as given; no robots.txt is fetched.
	RobotsIgnore = "ignore"
)

// OutcomeRobotsDisallowed is a URL that robots.txt disallows for the
// batch's User-Agent (or whose host's robots.txt could not be fetched):
// it was not requested. Not a success; never retried.
const OutcomeRobotsDisallowed = "robots_disallowed"

// RobotsDisallowedType is the ApplicationError type of a one-URL
// activity whose URL robots.txt disallows (final).
const RobotsDisallowedType = "RobotsDisallowed"

// CheckRobots says what is wrong with a robots setting, or nil ("" is the
// default).
func CheckRobots(s string) error {
	switch s {
	case "", RobotsObey, RobotsIgnore:
		return nil
	}
	return fmt.Errorf("robots: %q is not one of %q, %q", clip(s), RobotsObey, RobotsIgnore)
}

// Defaults of a RobotsCache.
const (
	// DefaultRobotsTTL is how long a robots.txt that was fetched (or
	// found missing, 4xx) is trusted. RFC 9309 asks for at most 24 hours.
	DefaultRobotsTTL = time.Hour
	// DefaultRobotsErrorTTL is how long a host whose robots.txt could not
	// be fetched (5xx, 429, no answer) stays disallowed before it is asked
	// again.
	DefaultRobotsErrorTTL = time.Minute
	// DefaultRobotsTimeout bounds one robots.txt fetch (and the attempt
	// timeout, when shorter).
	DefaultRobotsTimeout = 10 * time.Second
	// MaxRobotsBytes is how much of a robots.txt is parsed (RFC 9309: at
	// least 500 KiB); the rest is ignored.
	MaxRobotsBytes = 500 << 10
	// robotsRedirects is how many redirects a robots.txt fetch follows
	// (RFC 9309: at least five).
	robotsRedirects = 5
	// maxRobotsEntries bounds a worker's cache: past it, expired entries
	// are dropped, then the oldest.
	maxRobotsEntries = 10_000
)

// RobotsCache holds what the hosts' robots.txt files say, for one fetch
// worker: fetched once per origin (scheme, host and port), shared by
// every URL of every batch the worker runs, and by the other fetch
// workers of the blob store (under robots/). URLs of an origin whose
// robots.txt is being fetched wait for that one fetch. The zero value
// takes every default.
type RobotsCache struct {
	TTL, ErrorTTL, Timeout time.Duration
	// Now is the cache's clock (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	entries map[string]*robotsEntry
	flight  singleflight.Group
}

// Kinds of robots entry.
const (
	robotsParsed      = "parsed"      // 2xx: its rules apply
	robotsUnavailable = "unavailable" // 4xx, too many redirects: allow all
	robotsUnreachable = "unreachable" // 5xx, 429, network error, timeout: disallow all
)

// robotsEntry is what one origin's robots.txt says, until expires.
type robotsEntry struct {
	url     string // the robots.txt URL
	kind    string
	reason  string // why it is unreachable or unavailable
	data    *robotstxt.RobotsData
	body    []byte // as fetched, until it is shared
	expires time.Time
	// retry is how long an unreachable one stays so (for messages).
	retry time.Duration
}

func (c *RobotsCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *RobotsCache) ttl(kind string) time.Duration {
	switch {
	case kind == robotsUnreachable && c.ErrorTTL > 0:
		return c.ErrorTTL
	case kind == robotsUnreachable:
		return DefaultRobotsErrorTTL
	case c.TTL > 0:
		return c.TTL
	}
	return DefaultRobotsTTL
}

func (c *RobotsCache) timeout(attempt time.Duration) time.Duration {
	d := DefaultRobotsTimeout
	if c.Timeout > 0 {
		d = c.Timeout
	}
	if attempt > 0 {
		d = min(d, attempt)
	}
	return d
}

// cached is origin's entry, if one is fresh.
func (c *RobotsCache) cached(origin string) *robotsEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[origin]; e != nil && c.now().Before(e.expires) {
		return e
	}
	return nil
}

func (c *RobotsCache) put(origin string, e *robotsEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*robotsEntry{}
	}
	if len(c.entries) >= maxRobotsEntries {
		c.evict()
	}
	c.entries[origin] = e
}

// evict drops the expired entries and, if that leaves the cache full, the
// tenth of them that expire first: one pass over the cache makes room for
// many origins, not for one (a batch over a million hosts would pass over
// it at each).
func (c *RobotsCache) evict() {
	now := c.now()
	live := make([]string, 0, len(c.entries))
	for o, old := range c.entries {
		if !now.Before(old.expires) {
			delete(c.entries, o)
		} else {
			live = append(live, o)
		}
	}
	if len(c.entries) < maxRobotsEntries {
		return
	}
	slices.SortFunc(live, func(a, b string) int { return c.entries[a].expires.Compare(c.entries[b].expires) })
	for _, o := range live[:max(1, maxRobotsEntries/10)] {
		delete(c.entries, o)
	}
}

// CrawlDelay is the Crawl-delay origin's robots.txt gives agent (a
// User-Agent or its product token), as last fetched by this worker; ok is
// false when none is known.
func (c *RobotsCache) CrawlDelay(origin, agent string) (delay time.Duration, ok bool) {
	u, err := url.Parse(origin)
	if err != nil {
		return 0, false
	}
	e := c.cached(robotsOrigin(u))
	if e == nil || e.data == nil {
		return 0, false
	}
	d := e.data.FindGroup(ProductToken(agent)).CrawlDelay
	return d, d > 0
}

// ProductToken is the part of a User-Agent that robots.txt groups name
// (RFC 9309): its leading letters, '-' and '_' ("batchfetch" of
// "batchfetch/1.2 (+https://example.com)").
func ProductToken(ua string) string {
	for i, r := range ua {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return ua[:i]
		}
	}
	return ua
}

// robots is the worker's cache.
func (f *Fetcher) robots() *RobotsCache {
	f.robotsOnce.Do(func() {
		if f.Robots == nil {
			f.Robots = &RobotsCache{}
		}
	})
	return f.Robots
}

// robotsRefusal is the final word on a URL that robots.txt disallows, for
// a batch that obeys it; nil when the URL may be fetched. err is ctx's,
// when the URL stopped while its host's robots.txt was being fetched.
func (f *Fetcher) robotsRefusal(ctx context.Context, rawURL string, r *Request, p Policy) (*failure, error) {
	if p.Robots != RobotsObey {
		return nil, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, nil // the request itself says what is wrong
	}
	ua, own := f.agentOf(r)
	o := robotsOrigin(u)
	c := f.robots()
	e := c.cached(o)
	if e == nil {
		timeout := c.timeout(p.AttemptTimeout)
		ch := c.flight.DoChan(o, func() (any, error) {
			if e := c.cached(o); e != nil {
				return e, nil // fetched while this call waited its turn
			}
			e := f.loadRobots(o, ua, own, timeout)
			c.put(o, e)
			return e, nil
		})
		select {
		case res := <-ch:
			e = res.Val.(*robotsEntry)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return e.refusal(u, ProductToken(ua)), nil
}

// refusal is the word on u for agent (a product token), or nil.
func (e *robotsEntry) refusal(u *url.URL, agent string) *failure {
	name := agent
	if name == "" {
		name = "*"
	}
	switch e.kind {
	case robotsUnavailable:
		return nil
	case robotsUnreachable:
		return &failure{outcome: OutcomeRobotsDisallowed, msg: fmt.Sprintf("disallowed: %s could not be fetched (%s), so every URL of the host is disallowed for %s; asked again after %s", e.url, e.reason, name, e.retry)}
	}
	if e.data.TestAgent(normalizeRobotsPath(u.RequestURI()), agent) {
		return nil
	}
	return &failure{outcome: OutcomeRobotsDisallowed, msg: fmt.Sprintf("disallowed by %s for %s", e.url, name)}
}

// agentOf is the User-Agent a URL's request goes with: the batch's own
// (own: it is sent with the robots.txt request too), else the worker's.
// A User-Agent that names a secret is not the batch's to match.
func (f *Fetcher) agentOf(r *Request) (ua string, own bool) {
	if r != nil {
		for _, h := range r.Headers {
			if http.CanonicalHeaderKey(h.Name) == "User-Agent" && len(h.Secrets()) == 0 && strings.TrimSpace(h.Value) != "" {
				return strings.TrimSpace(h.Value), true
			}
		}
	}
	if f.Client != nil {
		if t, ok := f.Client.Transport.(userAgent); ok {
			return t.ua, false
		}
	}
	return "batchfetch/" + buildinfo.ID(), false
}

// refusedURL is the final error of a one-URL activity whose URL
// robots.txt disallows: attempts were made before this one, which made
// none.
func refusedURL(f *Fetcher, word Fetched, attempts int, elapsedMS int64) error {
	word.Attempts, word.ElapsedMS = attempts, elapsedMS
	observer(f.Observer).Fetched(0, time.Duration(elapsedMS)*time.Millisecond)
	observer(f.Observer).URLDone(word.Outcome)
	return temporal.NewApplicationErrorWithOptions(word.Error, RobotsDisallowedType, temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{word}})
}

// Names a fetch worker that checks robots.txt also takes FetchChunk and
// FetchURL under (requests included). A batch that obeys robots.txt calls
// them by these names, so that a worker of an earlier release, which would
// fetch every URL without looking, does not know the activity and gives
// it back to be retried on one that does (an unversioned rolling deploy).
const (
	FetchChunkObeyingRobots = "FetchChunkObeyingRobots"
	FetchURLObeyingRobots   = "FetchURLObeyingRobots"
)

func registerRobots(w worker.ActivityRegistry, f *Fetcher) {
	w.RegisterActivityWithOptions(func(ctx context.Context, req FetchChunkRequest) (*FetchChunkResult, error) {
		return f.FetchChunk(ctx, req)
	}, activity.RegisterOptions{Name: FetchChunkObeyingRobots})
	w.RegisterActivityWithOptions(func(ctx context.Context, req FetchURLRequest) (*FetchChunkResult, error) {
		return f.FetchURL(ctx, req)
	}, activity.RegisterOptions{Name: FetchURLObeyingRobots})
}
