package politeness

import (
	"context"
	"io"
	"os"
	"path/filepath"
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

func slotKeys(t *testing.T, l blobstore.Leaser, batch, host string, n int) []string {
	t.Helper()
	var keys []string
	for k := range n {
		got, err := l.List(context.Background(), slotPrefix(batch, host, k), 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range got {
			keys = append(keys, g.Key)
		}
	}
	return keys
}

// counted is a store counting its slot operations.
type counted struct {
	blobstore.Store
	ops atomic.Int64
}

func (c *counted) CreateNew(ctx context.Context, key string, data []byte) error {
	c.ops.Add(1)
	return c.Store.(blobstore.Leaser).CreateNew(ctx, key, data)
}

func (c *counted) List(ctx context.Context, prefix string, max int) ([]blobstore.Listed, error) {
	c.ops.Add(1)
	return c.Store.(blobstore.Leaser).List(ctx, prefix, max)
}

func (c *counted) Remove(ctx context.Context, key string) error {
	c.ops.Add(1)
	return c.Store.(blobstore.Leaser).Remove(ctx, key)
}

func (c *counted) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	c.ops.Add(1)
	return c.Store.Open(ctx, key)
}

// TestSlotsHoldAcrossWorkers: three workers on one store (a directory,
// an object store), each with four chunks asking as fast as they can,
// never have more than max_in_flight 2 requests open to the host
// together, and do reach 2; every slot is given back at the end.
func TestSlotsHoldAcrossWorkers(t *testing.T) {
	for _, loc := range []string{t.TempDir(), "mem://"} {
		t.Run(loc[:4], func(t *testing.T) {
			s, err := blobstore.Open(context.Background(), loc)
			if err != nil {
				t.Fatal(err)
			}
			store := &counted{Store: s}
			holdAcross(t, store)
		})
	}
}

func holdAcross(t *testing.T, store *counted) {
	ls := workersOn(store, 3, 3, time.Now)
	for _, l := range ls {
		l.SetRule("batches/r1", Rule{MaxInFlight: 2})
		l.SetAttemptTimeout("batches/r1", time.Second)
	}
	var open, most, done, refused atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for _, l := range ls {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done.Load() < 60 {
					release, wait, ok := l.TryStart("batches/r1", "slow.example")
					if !ok {
						refused.Add(1)
						time.Sleep(max(wait, time.Millisecond))
						continue
					}
					n := open.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					time.Sleep(10 * time.Millisecond) // the request
					open.Add(-1)
					release()
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d requests of 10ms, 2 at once, in %s: %d slot operations, %.1f a request; %d refusals",
		done.Load(), time.Since(start).Round(time.Millisecond), store.ops.Load(), float64(store.ops.Load())/float64(done.Load()), refused.Load())
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d requests open at once over 3 workers, want max_in_flight 2 (and reaching it)", m)
	}
	if keys := slotKeys(t, store, "batches/r1", "slow.example", 2); len(keys) != 0 {
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
	alone := New(Config{Store: d, Share: FixedShare(1)})
	alone.SetRule("b", Rule{MaxInFlight: 2})
	if _, _, ok := alone.TryStart("b", "h"); !ok {
		t.Fatal("refused")
	}
	if keys := slotKeys(t, d, "b", "h", 2); len(keys) != 0 {
		t.Errorf("a worker alone held slots: %q", keys)
	}
	two := New(Config{Store: d, Share: FixedShare(2)})
	two.SetRule("b2", Rule{MaxInFlight: 2})
	if _, _, ok := two.TryStart("b2", "h"); !ok {
		t.Fatal("refused")
	}
	if keys := slotKeys(t, d, "b2", "h", 2); len(keys) != 1 {
		t.Errorf("2 workers under max_in_flight 2 hold slots %q, want 1 (the store holds a small limit whenever there are several)", keys)
	}
}

// BenchmarkHeldRequest is the cost of the slot of one request, free,
// held in a directory (BENCH_DIR, default a temporary one): its
// TryStart and release.
func BenchmarkHeldRequest(b *testing.B) {
	dir := os.Getenv("BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		dir = filepath.Join(dir, "slots-bench")
		defer os.RemoveAll(dir)
	}
	d, err := blobstore.NewDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	l := New(Config{Store: d, Share: FixedShare(3)})
	l.SetRule("batches/r", Rule{MaxInFlight: 2})
	for b.Loop() {
		release, _, ok := l.TryStart("batches/r", "h")
		if !ok {
			b.Fatal("refused")
		}
		release()
	}
}

// TestSlotRenewed: a lease renewed before it expires keeps its slot past
// its first expiry; one taken over meanwhile is not renewed (the new
// holder's record stays).
func TestSlotRenewed(t *testing.T) {
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &syncClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a := &slots{store: d, leaser: d, holder: "a", now: c.Now}
	b := &slots{store: d, leaser: d, holder: "b", now: c.Now}
	l, err := a.take("b", "h", 1, time.Minute)
	if err != nil || l == nil {
		t.Fatalf("take: %v, %v", l, err)
	}
	defer l.release()
	c.Advance(50 * time.Second)
	if !l.write() {
		t.Fatal("the renewal lost a slot it holds")
	}
	c.Advance(30 * time.Second) // past the first expiry, not the renewed one
	if got, err := b.take("b", "h", 1, time.Minute); err != nil || got != nil {
		t.Fatalf("a renewed slot was taken over (%v)", err)
	}
	c.Advance(time.Minute)
	got, err := b.take("b", "h", 1, time.Minute)
	if err != nil || got == nil {
		t.Fatalf("an expired slot was not taken over (%v)", err)
	}
	defer got.release()
	if l.write() {
		t.Error("a lease taken over was renewed")
	}
	if keys := slotKeys(t, d, "b", "h", 1); !slices.Equal(keys, []string{got.key}) {
		t.Errorf("slot records %q, want only the new holder's %s", keys, got.key)
	}
}

// TestSlotsBeforeWorkersCounted: workers that have not counted each
// other yet (share 0) hold max_in_flight in the store: together they
// have no more open than it.
func TestSlotsBeforeWorkersCounted(t *testing.T) {
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ls := workersOn(d, 2, 0, time.Now)
	for _, l := range ls {
		l.SetRule("b", Rule{MaxInFlight: 1})
	}
	release, _, ok := ls[0].TryStart("b", "h")
	if !ok {
		t.Fatal("the first request was refused")
	}
	if _, _, ok := ls[1].TryStart("b", "h"); ok {
		t.Error("a second worker opened a request over max_in_flight 1 before the workers were counted")
	}
	release()
	if keys := slotKeys(t, d, "b", "h", 1); len(keys) != 0 {
		t.Errorf("slot records left: %q", keys)
	}
}
