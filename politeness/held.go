package politeness

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// Slot rechecks: a host whose slots are all held (by other workers) is
// asked again after slotRecheck plus up to as much again (jitter, so the
// workers do not ask in step).
const slotRecheck = 50 * time.Millisecond

// heldUpTo: a MaxInFlight up to heldUpTo is held in the store (with
// several workers), a larger one divided between them.
const heldUpTo = 16

// newSlots holds slots in cfg.Store, or is nil when it cannot.
func newSlots(cfg Config) *slots {
	leaser, ok := cfg.Store.(blobstore.Leaser)
	if !ok {
		return nil
	}
	holder := cfg.Holder
	if holder == "" {
		name, _ := os.Hostname()
		holder = fmt.Sprintf("%d@%s", os.Getpid(), name)
	}
	return &slots{store: cfg.Store, leaser: leaser, holder: holder, now: cfg.Now}
}

// SetAttemptTimeout tells how long batch's requests may last once on the
// wire (0: no bound): a slot held in the store lasts that plus
// SlotMargin before another worker may take it, and is renewed while its
// request runs. Call it after SetRule.
func (l *HostLimits) SetAttemptTimeout(batch string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if br := l.rules[batch]; br != nil {
		if d <= 0 {
			d = DefaultSlotHold
		}
		br.hold = d + SlotMargin
	}
}

// held tells whether rule's MaxInFlight is held in the store: with
// several workers, when it is at most heldUpTo, and before the workers
// are counted. Without a store
// that can, each worker keeps one request open, and Warning says so
// once. Called with l.mu held.
func (l *HostLimits) held(rule Rule) bool {
	if rule.MaxInFlight <= 0 {
		return false
	}
	counted := l.cfg.Share.Share()
	if counted <= 0 {
		return l.slots != nil && !l.noSlots // not known yet
	}
	// With several workers the store holds a limit up to heldUpTo:
	// shares rounded down waste a small limit, and shares taken while the
	// workers count each other differently (one joins, one leaves) could
	// add up to more. It does not depend on how many they are, so a
	// count that changes never moves a limit between held and divided. A
	// larger limit is divided: the store would cost more than it saves.
	share := l.Share()
	if share <= 1 || rule.MaxInFlight > heldUpTo {
		return false
	}
	if l.slots == nil || l.noSlots {
		l.warn("nostore", fmt.Sprintf("per_host max_in_flight %d cannot be held across %d fetch workers: their blob store cannot hold slots; each worker keeps 1 request open to a host", rule.MaxInFlight, share))
		return false
	}
	return true
}

// startHeld completes a request tryHere made room for by holding one of
// its host's slots in the store.
func (l *HostLimits) startHeld(batch, host string, t try) (release func(), wait time.Duration, ok bool) {
	got, err := l.slots.take(batch, host, t.slots, t.hold)
	if got != nil {
		return l.releaser(t.h, got), 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	t.res.CancelAt(now)
	t.h.inFlight--
	switch {
	case errors.Is(err, blobstore.ErrNoLeases):
		l.noSlots = true
		l.warn("nostore", fmt.Sprintf("per_host max_in_flight cannot be held across fetch workers: %v; each worker keeps 1 request open to a host", err))
		return nil, time.Millisecond, false // asked again without slots
	case err != nil:
		l.warn("store", fmt.Sprintf("holding a slot of a host in the blob store failed (its requests wait): %v", err))
	}
	wait = slotRecheck + rand.N(slotRecheck)
	t.h.slotRetry = now.Add(wait)
	return nil, wait, false
}

// warn keeps msg for Warning, once per kind. Called with l.mu held.
func (l *HostLimits) warn(kind, msg string) {
	if !l.warned[kind] {
		l.warned[kind] = true
		l.warning = append(l.warning, msg)
	}
}

// Warning is what this worker's rules could not do as asked, each said
// once (for the log): nil when nothing new.
func (l *HostLimits) Warning() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.warning
	l.warning = nil
	return w
}
