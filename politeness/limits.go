package politeness

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/batchfetch/batchfetch/blobstore"
)

// ShareSource says how many fetch workers share each rule (at least 1
// is used whatever it says). 0 is not known yet: rules are divided as
// by 1, but a MaxInFlight is held in the store when it can be (the
// workers may be several).
type ShareSource interface {
	Share() int
}

// Settler is a ShareSource that may ask a worker to hold back its
// requests under rules for a while: one that joins other workers, until
// they have counted it (they still take the shares of one worker fewer,
// or keep their limits to themselves as if alone).
type Settler interface {
	Settling() time.Duration
}

// Settling is how long requests under rules wait yet for the workers to
// count each other (0: not at all): a short wait at a worker's start,
// never a host's.
func (l *HostLimits) Settling() time.Duration {
	if s, ok := l.cfg.Share.(Settler); ok {
		return s.Settling()
	}
	return 0
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
	// Store is the blob store every fetch worker of a batch shares:
	// when it is a blobstore.Leaser, a rule's MaxInFlight holds across
	// more workers than it (see the package documentation). Optional.
	Store blobstore.Store
	// Holder names this worker in the slots it holds (default: the host
	// name and process ID).
	Holder string
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
	// slots holds MaxInFlight across workers (nil: the store cannot).
	slots *slots
	// noSlots: the store turned out unable to; warned: what Warning
	// said (or has yet to say) once.
	noSlots bool
	warned  map[string]bool
	warning []string
}

type hostKey struct{ batch, host string }

type batchRule struct {
	rule    Rule
	lastUse time.Time
	// hold is how long a slot's lease lasts (SetAttemptTimeout).
	hold time.Duration
}

type hostState struct {
	key        hostKey
	lim        *rate.Limiter
	inFlight   int
	crawlDelay time.Duration
	// pausedUntil: no request before it; the ramp runs from it.
	pausedUntil time.Time
	lastUse     time.Time
	// slotRetry: the host's slots were all held; not asked again before.
	slotRetry time.Time
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
	l := &HostLimits{cfg: cfg, rules: map[string]*batchRule{}, hosts: map[hostKey]*list.Element{}, lru: list.New(), released: make(chan struct{}), warned: map[string]bool{}}
	l.slots = newSlots(cfg)
	return l
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
	hold := DefaultSlotHold + SlotMargin
	if br := l.rules[batch]; br != nil {
		hold = br.hold
	}
	l.rules[batch] = &batchRule{rule: r, lastUse: now, hold: hold}
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
// A batch without a rule is always ok. A host whose MaxInFlight is held
// in the store (more workers than it) costs store operations: tens of
// microseconds on a local disk, a few round trips to an object store.
func (l *HostLimits) TryStart(batch, host string) (release func(), wait time.Duration, ok bool) {
	t := l.tryHere(batch, host)
	if !t.ok || t.slots == 0 {
		return t.release, t.wait, t.ok
	}
	return l.startHeld(batch, host, t)
}

// try is what this worker alone says of a request.
type try struct {
	release func()
	wait    time.Duration
	ok      bool
	// slots > 0: the host's MaxInFlight is held in the store, and the
	// request must hold one of its slots (h and res reserved for it).
	slots int
	hold  time.Duration
	h     *hostState
	res   *rate.Reservation
}

// tryHere applies the rule's share in this worker: pause, in-flight and
// rate. It takes the request's place and rate token.
func (l *HostLimits) tryHere(batch, host string) try {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	br := l.rules[batch]
	if br == nil {
		return try{release: func() {}, ok: true}
	}
	br.lastUse = now
	if d := l.Settling(); d > 0 {
		return try{wait: d}
	}
	h := l.state(hostKey{batch, host}, now)
	held := l.held(br.rule)
	r, inFlight, pauseLeft := l.effective(br.rule, h, now, held)
	if pauseLeft > 0 {
		return try{wait: pauseLeft}
	}
	if inFlight > 0 && h.inFlight >= inFlight {
		return try{}
	}
	if held && now.Before(h.slotRetry) {
		return try{wait: h.slotRetry.Sub(now)}
	}
	limit := rate.Inf
	if r > 0 {
		limit = rate.Limit(r)
	}
	if h.lim.Limit() != limit {
		h.lim.SetLimitAt(now, limit)
	}
	if tokens := h.lim.TokensAt(now); tokens < 1 {
		l.bound(h.key, now, r)
		return try{wait: max(seconds((1-tokens)/float64(r)), time.Millisecond)}
	}
	res := h.lim.ReserveN(now, 1)
	h.inFlight++
	if held {
		return try{ok: true, slots: br.rule.MaxInFlight, hold: br.hold, h: h, res: res}
	}
	return try{release: l.releaser(h, nil), ok: true}
}

// releaser is the release of a request to h (holding lease, or nil).
func (l *HostLimits) releaser(h *hostState, held *lease) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			if held != nil {
				held.release()
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			h.inFlight--
			h.lastUse = l.cfg.Now()
			if held != nil {
				h.slotRetry = time.Time{} // a slot is free: ask at once
			}
			if e, kept := l.hosts[h.key]; kept {
				l.lru.MoveToFront(e)
			}
			close(l.released)
			l.released = make(chan struct{})
		})
	}
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
// held: the rule's MaxInFlight is held in the store, not shared out.
func (l *HostLimits) effective(rule Rule, h *hostState, now time.Time, held bool) (r Rate, inFlight int, pauseLeft time.Duration) {
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
		if held {
			inFlight = rule.MaxInFlight
		}
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
