package politeness

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// Timing of the presence records (see Presence).
const (
	// PresenceRefresh is how often a held-back worker renews its record
	// and lists the others'.
	PresenceRefresh = time.Second
	// PresenceTTL is how long a record counts after its last renewal (a
	// worker that stopped without removing it).
	PresenceTTL = 5 * time.Second
	// PresenceHold is how long at least a newly registered worker that
	// finds others holds back: every other worker lists its record
	// meanwhile. It is longer on a store slower to write and list: a
	// refresh and twice the slowest renewal and listing seen.
	PresenceHold = PresenceRefresh + PresenceRefresh/4
	// PresenceLinger is how long a record stays after its worker has no
	// URLs of the host left: its next chunk of the batch may have some.
	PresenceLinger = PresenceRefresh / 2
)

// presenceOpTimeout bounds one store operation of a record.
const presenceOpTimeout = 5 * time.Second

// Presence divides the rate of a (batch, host) between the fetch workers
// that the rate holds back (that have URLs of the host waiting), rather
// than between all fetch workers. Such a worker keeps a small record in
// the blob store the batch's workers share, <batch>/hostrate/<host>/
// <worker>-<n>, renewed every PresenceRefresh while it has URLs of the
// host waiting and removed when it has had none for PresenceLinger (the
// batch's cleanup removes any left with the rest of its blobs); it lists
// the others' as often, and divides the rate by the records that have
// not expired (PresenceTTL), its own included.
//
// A worker that registers and finds no other record takes its share at
// once. One that finds others takes nothing for PresenceHold (they may
// be at a share that does not count it yet): by then each of them has
// listed its record and lowered its own share. Of two workers that
// register at once, at least one finds the other, as each writes before
// it lists. Workers that the rate does not hold back never touch the
// store.
type Presence struct {
	store   blobstore.Store
	lister  blobstore.Lister
	remover blobstore.Remover
	self    string // this worker's part of its records' keys
	seq     atomic.Int64

	mu    sync.Mutex
	hosts map[hostKey]*presenceHost
}

// presenceHost is one (batch, host) this worker has URLs of waiting.
type presenceHost struct {
	waiting int
	keeper  *keeper // nil: not registered
}

// keeper keeps one record; its view is guarded by Presence.mu.
type keeper struct {
	key     string
	wake    chan struct{}
	created time.Time
	// registered is when the record was first written (zero: not yet),
	// written when last; listed is the last good listing, which found
	// count records (this one included).
	registered, written, listed time.Time
	count                       int
	// slowest is the longest a renewal and listing took.
	slowest time.Duration
	// decided: the first good listing after the record was written has
	// been made; first: it found no other record.
	decided, first bool
}

// NewPresence is the presence of the worker known as identity (its
// task-queue identity; "": a random name) in store;
// nil when store cannot list blobs and remove one (HostLimits then
// divides by the share of all workers).
func NewPresence(store blobstore.Store, identity string) *Presence {
	l, ok := store.(blobstore.Lister)
	r, ok2 := store.(blobstore.Remover)
	if !ok || !ok2 {
		return nil
	}
	if identity == "" { // a name of its own all the same
		identity = rand.Text()
	}
	sum := sha256.Sum256([]byte(identity))
	return &Presence{store: store, lister: l, remover: r, self: hex.EncodeToString(sum[:8]), hosts: map[hostKey]*presenceHost{}}
}

// Want counts n more (n < 0: fewer) URLs of host that a chunk of batch
// has waiting: a worker stays registered while it has any. Every count
// added must be taken back.
func (l *HostLimits) Want(batch, host string, n int) {
	if p := l.cfg.Presence; p != nil && n != 0 {
		p.want(hostKey{batch, host}, n)
	}
}

// RateShare is what batch's rate for host is divided by in this worker
// now, and whether the worker holds back altogether (newly registered
// while others are at their share).
func (l *HostLimits) RateShare(batch, host string) (share int, holding bool) {
	n, hold := l.rateShare(hostKey{batch, host}, l.Share(), l.cfg.Now())
	return n, hold > 0
}

// rateShare is the divisor of k's rate given all fetch workers' share,
// or how long to hold back.
func (l *HostLimits) rateShare(k hostKey, all int, now time.Time) (int, time.Duration) {
	if p := l.cfg.Presence; p != nil {
		return p.share(k, all, now)
	}
	return all, 0
}

// PresenceMaxRate is the most requests a second to one host for which
// a worker registers when the rate refuses one: above it a refusal is
// a wait under 2 ms, which a chunk starting its URLs meets on every
// host whether or not the rate holds it back; such a rate stays
// divided between all fetch workers.
const PresenceMaxRate Rate = 500

// bound notes that k's rate, r in this worker, refused a request: the
// worker registers if it has URLs of the host waiting.
func (l *HostLimits) bound(k hostKey, now time.Time, r Rate) {
	if p := l.cfg.Presence; p != nil && r <= PresenceMaxRate {
		p.bound(k, now)
	}
}

func (p *Presence) want(k hostKey, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[k]
	if h == nil {
		if n < 0 {
			return
		}
		h = &presenceHost{}
		p.hosts[k] = h
	}
	h.waiting += n
	if h.waiting > 0 {
		return
	}
	if h.keeper == nil {
		delete(p.hosts, k)
		return
	}
	select {
	case h.keeper.wake <- struct{}{}: // it removes its record
	default:
	}
}

func (p *Presence) bound(k hostKey, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[k]
	if h == nil || h.waiting <= 0 || h.keeper != nil {
		return
	}
	h.keeper = &keeper{
		key:  recordPrefix(k) + "/" + p.self + "-" + strconv.FormatInt(p.seq.Add(1), 10),
		wake: make(chan struct{}, 1), created: now,
	}
	go p.keep(k, h.keeper)
}

// share is the divisor of k's rate for this worker, all being the share
// of all fetch workers, or how long to hold back.
func (p *Presence) share(k hostKey, all int, now time.Time) (int, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[k]
	if h == nil || h.keeper == nil {
		return all, 0 // not held back
	}
	kp := h.keeper
	if !kp.decided {
		if now.Sub(kp.created) > PresenceTTL {
			return all, 0 // the store does not answer
		}
		return all, PresenceRefresh / 10 // registering
	}
	hold := max(PresenceHold, PresenceRefresh+2*kp.slowest)
	if settled := kp.registered.Add(hold); !kp.first && now.Before(settled) {
		return all, settled.Sub(now) // the others may not count this worker yet
	}
	if now.Sub(kp.listed) > PresenceTTL || now.Sub(kp.written) > PresenceTTL/2 {
		return max(all, kp.count), 0 // the store does not answer
	}
	return max(1, kp.count), 0
}

// keep writes, renews and finally removes k's record, and lists the
// others', until the worker has no URLs of the host waiting.
func (p *Presence) keep(k hostKey, kp *keeper) {
	t := time.NewTimer(0)
	defer t.Stop()
	var idle time.Time // since when the worker has had no URLs waiting
	for {
		select {
		case <-t.C:
		case <-kp.wake:
		}
		if wait := p.linger(k, &idle); wait > 0 {
			t.Reset(wait)
			continue
		}
		if p.leave(k, kp) {
			ctx, cancel := context.WithTimeout(context.Background(), presenceOpTimeout)
			_ = p.remover.Remove(ctx, kp.key) // else it expires, or goes with the batch
			cancel()
			return
		}
		began := time.Now()
		if err := p.write(kp.key); err == nil {
			p.mu.Lock()
			kp.written = time.Now()
			if kp.registered.IsZero() {
				kp.registered = kp.written
			}
			p.mu.Unlock()
		}
		p.list(k, kp)
		p.mu.Lock()
		kp.slowest = max(kp.slowest, time.Since(began))
		p.mu.Unlock()
		t.Reset(PresenceRefresh)
	}
}

// linger is how long yet k's record stays while the worker has no URLs
// of the host waiting (the batch's next chunk on this worker may bring
// some), idle being since when it has had none; 0 once it may go, or
// while there are URLs waiting.
func (p *Presence) linger(k hostKey, idle *time.Time) time.Duration {
	if p.wanted(k) {
		*idle = time.Time{}
		return 0
	}
	if idle.IsZero() {
		*idle = time.Now()
	}
	return max(0, PresenceLinger-time.Since(*idle))
}

// wanted tells whether the worker has URLs of k waiting.
func (p *Presence) wanted(k hostKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[k]
	return h != nil && h.waiting > 0
}

// leave tells whether k has no URLs waiting any more, and forgets kp.
func (p *Presence) leave(k hostKey, kp *keeper) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[k]
	if h != nil && h.waiting > 0 {
		return false
	}
	if h != nil && h.keeper == kp {
		delete(p.hosts, k)
	}
	return true
}

// recordPrefix is where the records of k are.
func recordPrefix(k hostKey) string {
	return strings.TrimSuffix(k.batch, "/") + "/hostrate/" + hostPart(k.host)
}

// hostPart is host as one part of a key: itself when it is a plain host
// name, else a digest of it.
func hostPart(host string) string {
	plain := host != "" && !strings.HasPrefix(host, ".") && !strings.Contains(host, "..")
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			plain = false
		}
	}
	if plain {
		return host
	}
	sum := sha256.Sum256([]byte(host))
	return "~" + hex.EncodeToString(sum[:8])
}
