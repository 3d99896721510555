package politeness

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// syncClock is a fake clock safe for the lease renewals' goroutines.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *syncClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// workersOn are n HostLimits, as n fetch workers, on one store, each
// counting share workers.
func workersOn(store blobstore.Store, n, share int, now func() time.Time) []*HostLimits {
	var ls []*HostLimits
	for range n {
		ls = append(ls, New(Config{Store: store, Share: FixedShare(share), Now: now}))
	}
	return ls
}

func slotKeys(t *testing.T, d *blobstore.Dir, batch, host string, n int) []string {
	t.Helper()
	var keys []string
	for k := range n {
		got, err := d.List(context.Background(), slotPrefix(batch, host, k))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, got...)
	}
	return keys
}

// TestSlotsHoldAcrossWorkers: three workers on one directory, each with
// four chunks asking as fast as they can, never have more than
// max_in_flight 2 requests open to the host together, and do reach 2;
// every slot is given back at the end.
func TestSlotsHoldAcrossWorkers(t *testing.T) {
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ls := workersOn(d, 3, 3, time.Now)
	for _, l := range ls {
		l.SetRule("batches/r1", Rule{MaxInFlight: 2})
		l.SetAttemptTimeout("batches/r1", time.Second)
	}
	var open, most, done atomic.Int64
	var wg sync.WaitGroup
	for _, l := range ls {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done.Load() < 60 {
					release, wait, ok := l.TryStart("batches/r1", "slow.example")
					if !ok {
						time.Sleep(min(wait, 5*time.Millisecond))
						continue
					}
					n := open.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					time.Sleep(2 * time.Millisecond) // the request
					open.Add(-1)
					release()
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d requests open at once over 3 workers, want max_in_flight 2 (and reaching it)", m)
	}
	if keys := slotKeys(t, d, "batches/r1", "slow.example", 2); len(keys) != 0 {
		t.Errorf("slots left held after every request ended: %q", keys)
	}
	for _, l := range ls {
		if w := l.Warning(); w != nil {
			t.Errorf("warning: %q", w)
		}
	}
}

// TestSlotTakenOverOnExpiry: a worker that holds the only slot and dies
// (never releases) holds it until the attempt timeout and the margin
// have passed; then another worker takes it, and the dead worker's late
// release does not free the new holder's slot. A release frees the slot.
func TestSlotTakenOverOnExpiry(t *testing.T) {
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &syncClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	ls := workersOn(d, 3, 2, c.Now)
	for _, l := range ls {
		l.SetRule("b", Rule{MaxInFlight: 1})
		l.SetAttemptTimeout("b", 10*time.Second)
	}
	a, b, other := ls[0], ls[1], ls[2]
	deadRelease, _, ok := a.TryStart("b", "h")
	if !ok {
		t.Fatal("the first request was refused")
	}
	if _, wait, ok := b.TryStart("b", "h"); ok || wait < slotRecheck || wait > 2*slotRecheck {
		t.Fatalf("a second worker started while the slot is held (ok %v, wait %s, want %s to %s)", ok, wait, slotRecheck, 2*slotRecheck)
	}
	c.Advance(10*time.Second + SlotMargin - time.Millisecond)
	if _, _, ok := b.TryStart("b", "h"); ok {
		t.Fatal("the slot was taken before it expired")
	}
	c.Advance(time.Second)
	release, _, ok := b.TryStart("b", "h")
	if !ok {
		t.Fatal("an expired slot was not taken over")
	}
	if keys := slotKeys(t, d, "b", "h", 1); !slices.Equal(keys, []string{slotPrefix("b", "h", 0) + "/1"}) {
		t.Errorf("slot records %q, want only generation 1", keys)
	}
	deadRelease() // the dead worker wakes up
	c.Advance(time.Second)
	if _, _, ok := other.TryStart("b", "h"); ok {
		t.Fatal("the taken-over holder's release freed the new holder's slot")
	}
	release()
	c.Advance(time.Second)
	release, _, ok = other.TryStart("b", "h")
	if !ok {
		t.Fatal("a released slot was not free")
	}
	release()
	if keys := slotKeys(t, d, "b", "h", 1); len(keys) != 0 {
		t.Errorf("slot records left: %q", keys)
	}
}

// storeOnly hides a store's Leaser: a store that cannot hold slots.
type storeOnly struct{ blobstore.Store }

// TestSlotsFallBack: a store that cannot hold slots leaves each worker
// one request open, and says so once; workers no more than max_in_flight
// hold nothing in the store.
func TestSlotsFallBack(t *testing.T) {
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := New(Config{Store: storeOnly{d}, Share: FixedShare(3)})
	l.SetRule("b", Rule{MaxInFlight: 2})
	if _, _, ok := l.TryStart("b", "h"); !ok {
		t.Fatal("the first request was refused")
	}
	if _, _, ok := l.TryStart("b", "h"); ok {
		t.Fatal("a second request open: want one per worker")
	}
	w := l.Warning()
	if len(w) != 1 || !strings.Contains(w[0], "max_in_flight 2 cannot be held across 3 fetch workers") {
		t.Errorf("warning %q", w)
	}
	if _, _, ok := l.TryStart("b", "h2"); !ok {
		t.Fatal("the first request to another host was refused")
	}
	if w := l.Warning(); w != nil {
		t.Errorf("said again: %q", w)
	}
	few := New(Config{Store: d, Share: FixedShare(2)})
	few.SetRule("b", Rule{MaxInFlight: 2})
	if _, _, ok := few.TryStart("b", "h"); !ok {
		t.Fatal("refused")
	}
	if keys := slotKeys(t, d, "b", "h", 2); len(keys) != 0 {
		t.Errorf("2 workers under max_in_flight 2 held slots: %q", keys)
	}
}
