package politeness

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ShareSource says how many fetch workers share each rule (at least 1
// is used whatever it says).
type ShareSource interface {
	Share() int
}

// FixedShare is a ShareSource of a known number of workers.
type FixedShare int

// Share is n.
func (n FixedShare) Share() int { return int(n) }

// Defaults of Config.
const (
	DefaultMaxHosts  = 10000
	DefaultIdleAfter = 10 * time.Minute
)

// Config sets up a HostLimits. Zero fields take the defaults.
type Config struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Share divides each rule between the workers (default: 1).
	Share ShareSource
	// MaxHosts bounds the (batch, host) pairs kept (DefaultMaxHosts).
	MaxHosts int
	// IdleAfter forgets a pair unused that long (DefaultIdleAfter).
	IdleAfter time.Duration
	// Presence divides a rate between the workers it holds back rather
	// than all of them (nil: by Share).
	Presence *Presence
}

// HostLimits holds the rate limiter and in-flight count of every (batch,
// host) pair a worker is fetching from. It is safe for concurrent use.
type HostLimits struct {
	cfg   Config
	mu    sync.Mutex
	rules map[string]*batchRule
	hosts map[hostKey]*list.Element // of *hostState
	lru   *list.List                // front: most recently used
	// released is closed (and replaced) when a request ends.
	released chan struct{}
}

type hostKey struct{ batch, host string }

type batchRule struct {
	rule    Rule
	lastUse time.Time
}

type hostState struct {
	key        hostKey
	lim        *rate.Limiter
	inFlight   int
	crawlDelay time.Duration
	// pausedUntil: no request before it; the ramp runs from it.
	pausedUntil time.Time
	lastUse     time.Time
}

// New makes a HostLimits.
func New(cfg Config) *HostLimits {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Share == nil {
		cfg.Share = FixedShare(1)
	}
	if cfg.MaxHosts <= 0 {
		cfg.MaxHosts = DefaultMaxHosts
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = DefaultIdleAfter
	}
	return &HostLimits{cfg: cfg, rules: map[string]*batchRule{}, hosts: map[hostKey]*list.Element{}, lru: list.New(), released: make(chan struct{})}
}

// SetRule sets batch's rule (a rule that limits nothing removes it).
func (l *HostLimits) SetRule(batch string, r Rule) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	for b, br := range l.rules {
		if now.Sub(br.lastUse) > l.cfg.IdleAfter {
			delete(l.rules, b)
		}
	}
	if !r.Limits() {
		delete(l.rules, batch)
		return
	}
	l.rules[batch] = &batchRule{rule: r, lastUse: now}
}

// SetCrawlDelay records host's robots.txt Crawl-delay for batch: its
// rate is at most one request per d.
func (l *HostLimits) SetCrawlDelay(batch, host string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.state(hostKey{batch, host}, l.cfg.Now()); h != nil {
		h.crawlDelay = d
	}
}

// Pause stops batch's requests to host until until (a Retry-After), after
// which the host ramps back (see the package documentation). A pause that
// ends earlier than one already set changes nothing.
func (l *HostLimits) Pause(batch, host string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.state(hostKey{batch, host}, l.cfg.Now()); h != nil && until.After(h.pausedUntil) {
		h.pausedUntil = until
	}
}

// TryStart asks to start one request of batch to host, without waiting.
// ok: go ahead, and call release (once) when the request ends. Otherwise
// wait is when the host may be ready (0: once one of its requests ends).
// A batch without a rule is always ok.
func (l *HostLimits) TryStart(batch, host string) (release func(), wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	br := l.rules[batch]
	if br == nil {
		return func() {}, 0, true
	}
	br.lastUse = now
	h := l.state(hostKey{batch, host}, now)
	r, inFlight, pauseLeft := l.effective(br.rule, h, now)
	if pauseLeft > 0 {
		return nil, pauseLeft, false
	}
	if inFlight > 0 && h.inFlight >= inFlight {
		return nil, 0, false
	}
	limit := rate.Inf
	if r > 0 {
		limit = rate.Limit(r)
	}
	if h.lim.Limit() != limit {
		h.lim.SetLimitAt(now, limit)
	}
	if tokens := h.lim.TokensAt(now); tokens < 1 {
		l.bound(h.key, now)
		return nil, max(time.Duration((1-tokens)/float64(r)*float64(time.Second)), time.Millisecond), false
	}
	h.lim.AllowN(now, 1)
	h.inFlight++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			h.inFlight--
			h.lastUse = l.cfg.Now()
			if e, kept := l.hosts[h.key]; kept {
				l.lru.MoveToFront(e)
			}
			close(l.released)
			l.released = make(chan struct{})
		})
	}, 0, true
}

// Released is closed when a request ends: a caller refused for want of
// a place (wait 0) takes it before TryStart and waits on it after.
func (l *HostLimits) Released() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

// Share is the number of workers the rules are divided between now.
func (l *HostLimits) Share() int { return max(1, l.cfg.Share.Share()) }

// Hosts is the number of (batch, host) pairs kept.
func (l *HostLimits) Hosts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// Rampup fractions after a pause, one step each.
var ramp = [...]float64{0.25, 0.5}

// effective is this worker's rate and in-flight cap for h now (0: none),
// or how long its pause lasts yet.
func (l *HostLimits) effective(rule Rule, h *hostState, now time.Time) (r Rate, inFlight int, pauseLeft time.Duration) {
	r = rule.Rate
	if h.crawlDelay > 0 {
		if cd := Rate(float64(time.Second) / float64(h.crawlDelay)); r == 0 || cd < r {
			r = cd
		}
	}
	share := l.Share()
	rateShare, hold := l.rateShare(h.key, share, now)
	if hold > 0 {
		return 0, 0, hold
	}
	r /= Rate(rateShare)
	if rule.MaxInFlight > 0 {
		inFlight = max(1, rule.MaxInFlight/share)
	}
	if h.pausedUntil.IsZero() {
		return r, inFlight, 0
	}
	if now.Before(h.pausedUntil) {
		return 0, 0, h.pausedUntil.Sub(now)
	}
	step := max(time.Second, r.interval())
	n := int(now.Sub(h.pausedUntil) / step)
	if n >= len(ramp) {
		h.pausedUntil = time.Time{} // ramped back
		return r, inFlight, 0
	}
	f := ramp[n]
	if inFlight > 0 {
		inFlight = max(1, int(float64(inFlight)*f))
	}
	return r * Rate(f), inFlight, 0
}

// state is h's state, made and marked used; the least recently used
// idle pairs over the bounds are forgotten. Called with l.mu held.
func (l *HostLimits) state(k hostKey, now time.Time) *hostState {
	if e, ok := l.hosts[k]; ok {
		h := e.Value.(*hostState)
		h.lastUse = now
		l.lru.MoveToFront(e)
		return h
	}
	h := &hostState{key: k, lim: rate.NewLimiter(rate.Inf, 1), lastUse: now}
	l.hosts[k] = l.lru.PushFront(h)
	l.evict(now)
	return h
}

// evict forgets pairs idle past IdleAfter, and the least recently used
// idle ones while there are more than MaxHosts. Pairs with requests open
// are kept (they are bounded by the worker's fetch slots).
func (l *HostLimits) evict(now time.Time) {
	for e := l.lru.Back(); e != nil; {
		h := e.Value.(*hostState)
		prev := e.Prev()
		over := l.lru.Len() > l.cfg.MaxHosts
		idle := now.Sub(h.lastUse) > l.cfg.IdleAfter
		if !over && !idle {
			return
		}
		if h.inFlight == 0 && now.Before(h.pausedUntil) && !over {
			e = prev // a pause is kept while it lasts
			continue
		}
		if h.inFlight == 0 {
			l.lru.Remove(e)
			delete(l.hosts, h.key)
		}
		e = prev
	}
}
