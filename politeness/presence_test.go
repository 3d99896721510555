package politeness

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

const (
	testBatch = "batches/run-1"
	testHost  = "slow.example"
)

// testWorker is a worker with 100 URLs of a host waiting until it
// leaves.
type testWorker struct {
	*HostLimits
	left bool
}

func (w *testWorker) leave() {
	if !w.left {
		w.Want(testBatch, testHost, -100)
		w.left = true
	}
}

// boundWorker is a worker with a host's URLs waiting, its rate refusing.
func boundWorker(t *testing.T, store blobstore.Store, name string, all int) *testWorker {
	t.Helper()
	w := newWorker(t, store, name, all)
	w.bind()
	return w
}

// newWorker is a worker under a rule of 30/s for testHost.
func newWorker(t *testing.T, store blobstore.Store, name string, all int) *testWorker {
	t.Helper()
	p := NewPresence(store, name)
	if p == nil {
		t.Fatal("a directory store gives no presence")
	}
	w := &testWorker{HostLimits: New(Config{Share: FixedShare(all), Presence: p}), left: true}
	w.SetRule(testBatch, Rule{Rate: 30})
	t.Cleanup(w.leave)
	return w
}

// bind gives the worker 100 URLs of the host: the first request takes
// the burst, the second is refused.
func (w *testWorker) bind() {
	w.Want(testBatch, testHost, 100)
	w.left = false
	for range 2 {
		if release, _, ok := w.TryStart(testBatch, testHost); ok {
			release()
		}
	}
}

// waitShares waits until each worker divides the rate as want says
// (without holding back), checking meanwhile that the workers' shares
// never add up to more than the rate.
func waitShares(t *testing.T, ws []*testWorker, want []int) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		sum, done := 0.0, true
		for i, l := range ws {
			n, holding := l.RateShare(testBatch, testHost)
			if !holding {
				sum += 1 / float64(n)
			}
			done = done && !holding && n == want[i]
		}
		if sum > 1+1e-9 {
			t.Fatalf("the workers take %.2f times the rate together", sum)
		}
		if done {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			var got []string
			for _, l := range ws {
				n, holding := l.RateShare(testBatch, testHost)
				got = append(got, fmt.Sprintf("%d (holding %v)", n, holding))
			}
			t.Fatalf("after 10s the shares are %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond) // polling the workers' view
	}
}

func TestPresenceDividesTheRateBetweenBoundWorkers(t *testing.T) {
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := boundWorker(t, store, "a", 3)
	took := waitShares(t, []*testWorker{a}, []int{1})
	t.Logf("a lone bound worker takes the whole rate after %s", took)

	b := boundWorker(t, store, "b", 3)
	c := boundWorker(t, store, "c", 3)
	took = waitShares(t, []*testWorker{a, b, c}, []int{3, 3, 3})
	t.Logf("three bound workers take a third each after %s", took)

	c.leave() // c has no URLs of the host left
	took = waitShares(t, []*testWorker{a, b}, []int{2, 2})
	t.Logf("the other two take half each %s after the third left", took)
	if took > 3*time.Second {
		t.Errorf("the others took %s to see the third leave, want about a refresh (%s)", took, PresenceRefresh)
	}

	// Once none has URLs waiting, no record is left.
	a.leave()
	b.leave()
	noRecords(t, store)
}

func TestPresenceNewcomerHoldsBackWhileOthersSeeIt(t *testing.T) {
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := boundWorker(t, store, "a", 2)
	waitShares(t, []*testWorker{a}, []int{1})
	b := boundWorker(t, store, "b", 2)
	// b holds back until a has seen it: never more than the rate in all.
	waitShares(t, []*testWorker{a, b}, []int{2, 2})
}

func TestPresenceWorkersBoundAtOnce(t *testing.T) {
	dir, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := blobstore.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.(*blobstore.Bucket).Close()
	for name, store := range map[string]blobstore.Store{"dir": dir, "bucket": bucket} {
		t.Run(name, func(t *testing.T) {
			ws := []*testWorker{newWorker(t, store, "a", 3), newWorker(t, store, "b", 3), newWorker(t, store, "c", 3)}
			var wg sync.WaitGroup
			for _, w := range ws {
				wg.Go(w.bind)
			}
			wg.Wait()
			took := waitShares(t, ws, []int{3, 3, 3})
			t.Logf("three workers bound at once take a third each after %s", took)
			for _, w := range ws {
				w.leave()
			}
			noRecords(t, store)
		})
	}
}

// noRecords waits until no presence record of testHost is left.
func noRecords(t *testing.T, store blobstore.Store) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		keys, err := store.(blobstore.Lister).List(context.Background(), recordPrefix(hostKey{testBatch, testHost}), 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("records left after every worker left: %v", keys)
		}
	}
}

// countingStore counts the operations on a store.
type countingStore struct {
	*blobstore.Dir
	ops atomic.Int64
}

func (s *countingStore) Create(ctx context.Context, key string) (blobstore.Writer, error) {
	s.ops.Add(1)
	return s.Dir.Create(ctx, key)
}

func (s *countingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	s.ops.Add(1)
	return s.Dir.Open(ctx, key)
}

func (s *countingStore) List(ctx context.Context, prefix string, max int) ([]blobstore.Listed, error) {
	s.ops.Add(1)
	return s.Dir.List(ctx, prefix, max)
}

func TestPresenceUnboundWorkerNeverTouchesTheStore(t *testing.T) {
	dir, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Dir: dir}
	l := New(Config{Share: FixedShare(3), Presence: NewPresence(store, "a")})
	l.SetRule(testBatch, Rule{Rate: 30, MaxInFlight: 1})
	for i := range 500 {
		host := fmt.Sprintf("h%d.example", i)
		l.Want(testBatch, host, 1)
		release, _, ok := l.TryStart(testBatch, host)
		if !ok {
			t.Fatalf("host %d refused its first request", i)
		}
		if _, wait, ok := l.TryStart(testBatch, host); ok || wait != 0 {
			t.Fatalf("host %d: a second request at once went ahead (%v) or waits for the rate (%v), want a wait for a place", i, ok, wait)
		}
		l.Want(testBatch, host, -1)
		release()
	}
	// A rate above PresenceMaxRate refuses a request right after
	// another, for a fraction of a millisecond: it holds nothing back.
	l.SetRule(testBatch, Rule{Rate: 10000})
	for i := range 500 {
		host := fmt.Sprintf("fast%d.example", i)
		l.Want(testBatch, host, 2)
		release, _, ok := l.TryStart(testBatch, host)
		if !ok {
			t.Fatalf("host %d refused its first request", i)
		}
		release()
		if release, _, ok := l.TryStart(testBatch, host); ok {
			release()
		}
		if registered(l, host) {
			t.Fatalf("host %d: the worker registered for a rate of 10000/s", i)
		}
		l.Want(testBatch, host, -2)
	}
	if n := store.ops.Load(); n != 0 {
		t.Errorf("%d store operations for hosts whose rate never held the worker back", n)
	}
	if NewPresence(struct{ blobstore.Store }{dir}, "a") != nil {
		t.Error("a store that cannot list gives a presence")
	}
}

// registered tells whether l keeps a record for host.
func registered(l *HostLimits, host string) bool {
	p := l.cfg.Presence
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hosts[hostKey{testBatch, host}]
	return h != nil && h.keeper != nil
}

func TestHostPartIsOneKeyPart(t *testing.T) {
	for host, want := range map[string]string{"example.com": "example.com", "127.0.1.5": "127.0.1.5", "..": "", "::1": "", "": "", "a/b": ""} {
		got := hostPart(host)
		if want != "" && got != want {
			t.Errorf("hostPart(%q) = %q, want %q", host, got, want)
		}
		if want == "" && (got[0] != '~' || len(got) != 17) {
			t.Errorf("hostPart(%q) = %q, want a digest", host, got)
		}
	}
}

// TestPresenceHoldsTheRateOverWorkersComingAndGoing: three workers ask
// for a host as fast as they are let, one after another and one leaving
// early; the requests they start together never exceed the rate in any
// second by more than one request's burst per worker.
func TestPresenceHoldsTheRateOverWorkersComingAndGoing(t *testing.T) {
	const rate = 30
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var times []time.Time
	run := func(w *testWorker, from, until time.Time) {
		time.Sleep(time.Until(from)) // its URLs come then
		w.bind()
		defer w.leave()
		for time.Now().Before(until) {
			release, wait, ok := w.TryStart(testBatch, testHost)
			if ok {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				release()
				continue
			}
			time.Sleep(min(max(wait, time.Millisecond), 50*time.Millisecond)) // the chunk's timer
		}
	}
	start := time.Now()
	plan := []struct{ from, until time.Duration }{{0, 7 * time.Second}, {1500 * time.Millisecond, 7 * time.Second}, {3 * time.Second, 5 * time.Second}}
	var wg sync.WaitGroup
	for i, p := range plan {
		w := newWorker(t, store, fmt.Sprint("w", i), 3)
		w.SetRule(testBatch, Rule{Rate: rate})
		wg.Go(func() { run(w, start.Add(p.from), start.Add(p.until)) })
	}
	wg.Wait()
	most := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		most = max(most, n)
	}
	t.Logf("%d requests in 7 s at %d/s (ideal %d), at most %d in a second", len(times), rate, 7*rate, most)
	if most > rate+len(plan) {
		t.Errorf("%d requests in one second, want at most %d and a burst of one per worker", most, rate)
	}
	noRecords(t, store)
}
