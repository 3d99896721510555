package politeness

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimits(share int) (*HostLimits, *fakeClock) {
	c := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return New(Config{Now: c.Now, Share: FixedShare(share)}), c
}

// drive tries to start a request every tick for d, holding each for
// hold (0: released at once), and returns the start times.
func drive(l *HostLimits, c *fakeClock, batch, host string, d, tick, hold time.Duration) []time.Time {
	var starts []time.Time
	type open struct {
		end     time.Time
		release func()
	}
	var running []open
	for end := c.Now().Add(d); c.Now().Before(end); c.Advance(tick) {
		kept := running[:0]
		for _, o := range running {
			if !c.Now().Before(o.end) {
				o.release()
			} else {
				kept = append(kept, o)
			}
		}
		running = kept
		for {
			release, _, ok := l.TryStart(batch, host)
			if !ok {
				break
			}
			starts = append(starts, c.Now())
			if hold == 0 {
				release()
				break // one attempt a tick: a caller with one URL ready
			}
			running = append(running, open{c.Now().Add(hold), release})
		}
	}
	return starts
}

// mostInWindow is the most starts in any window of w.
func mostInWindow(starts []time.Time, w time.Duration) int {
	most := 0
	for i := range starts {
		n := 0
		for j := i; j < len(starts) && starts[j].Sub(starts[i]) < w; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Rate
		err  string
	}{
		{"2/s", 2, ""}, {"30/m", 0.5, ""}, {"0.5/s", 0.5, ""}, {" 3 / s ", 3, ""},
		{"x", 0, `"x" is not N/s or N/m`}, {"2/h", 0, "is not N/s or N/m"}, {"0/s", 0, "above zero"},
		{"-1/s", 0, "above zero"}, {"1e9/s", 0, "over the limit"}, {"NaN/s", 0, "is not N/s"}, {"", 0, "is not N/s"},
		{"0.0000001/s", 0, `"0.0000001/s" is under the floor of one request per 10 minutes ("0.1/m")`},
		{"0.09/m", 0, "under the floor"}, {"1e-300/s", 0, "under the floor"},
		{"0.1/m", 1.0 / 600, ""}, {"0.0016666666666666668/s", 1.0 / 600, ""},
	} {
		got, err := ParseRate(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("ParseRate(%q) = %v, %v; want %v", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseRate(%q) error %v; want one saying %q", c.in, err, c.err)
		}
	}
}

// TestRateHoldsOverAnyWindow: at 5/s, no window of one second (nor of
// three) holds more than rate×window plus the burst of one request, and
// the rate is reached (not merely undershot).
func TestRateHoldsOverAnyWindow(t *testing.T) {
	l, c := newLimits(1)
	l.SetRule("b", Rule{Rate: 5})
	starts := drive(l, c, "b", "h", 10*time.Second, 10*time.Millisecond, 0)
	for _, w := range []time.Duration{time.Second, 3 * time.Second} {
		limit := int(5*w.Seconds()) + 1
		if got := mostInWindow(starts, w); got > limit {
			t.Errorf("%d requests in a window of %s, want at most %d", got, w, limit)
		}
	}
	if len(starts) < 49 || len(starts) > 51 {
		t.Errorf("%d requests in 10s at 5/s, want about 50", len(starts))
	}
}

func TestInFlightHolds(t *testing.T) {
	l, c := newLimits(1)
	l.SetRule("b", Rule{MaxInFlight: 3})
	var releases []func()
	for range 3 {
		r, _, ok := l.TryStart("b", "h")
		if !ok {
			t.Fatal("refused under max_in_flight")
		}
		releases = append(releases, r)
	}
	if _, wait, ok := l.TryStart("b", "h"); ok || wait != 0 {
		t.Fatalf("a 4th request at once: ok %v wait %s; want refused until a release (wait 0)", ok, wait)
	}
	if _, _, ok := l.TryStart("b", "other"); !ok {
		t.Error("another host is held back by this one's requests")
	}
	releases[0]()
	releases[0]() // a second release changes nothing
	if _, _, ok := l.TryStart("b", "h"); !ok {
		t.Error("refused after a release")
	}
	if _, _, ok := l.TryStart("b", "h"); ok {
		t.Error("a double release freed two places")
	}
	c.Advance(time.Hour)
}

func TestShareDivides(t *testing.T) {
	l, c := newLimits(4)
	l.SetRule("b", Rule{Rate: 8, MaxInFlight: 10})
	starts := drive(l, c, "b", "h", 10*time.Second, 10*time.Millisecond, 0)
	if n := len(starts); n < 19 || n > 21 {
		t.Errorf("%d requests in 10s at 8/s over 4 workers, want about 20", n)
	}
	var open int
	for {
		if _, _, ok := l.TryStart("b", "h2"); !ok {
			break
		}
		open++
		c.Advance(time.Second)
	}
	if open != 2 {
		t.Errorf("%d open at once, want max_in_flight 10 / 4 workers = 2", open)
	}
	// More workers than max_in_flight: each still holds one.
	l2, _ := newLimits(4)
	l2.SetRule("b", Rule{MaxInFlight: 2})
	if _, _, ok := l2.TryStart("b", "h"); !ok {
		t.Fatal("refused the first request")
	}
	if _, _, ok := l2.TryStart("b", "h"); ok {
		t.Error("a second request open with 4 workers sharing max_in_flight 2")
	}
}

func TestCrawlDelayLowersRate(t *testing.T) {
	l, c := newLimits(1)
	l.SetRule("b", Rule{Rate: 5})
	l.SetCrawlDelay("b", "h", 2*time.Second)
	starts := drive(l, c, "b", "h", 20*time.Second, 10*time.Millisecond, 0)
	if n := len(starts); n < 10 || n > 11 {
		t.Errorf("%d requests in 20s with Crawl-delay 2s, want about 10", n)
	}
	// A Crawl-delay above the rule's rate does not raise it.
	l.SetCrawlDelay("b", "fast", 10*time.Millisecond)
	if n := len(drive(l, c, "b", "fast", 10*time.Second, 10*time.Millisecond, 0)); n > 51 {
		t.Errorf("%d requests in 10s: a short Crawl-delay raised the rate over 5/s", n)
	}
	// Without a rule's rate, the Crawl-delay alone limits.
	l.SetRule("c", Rule{MaxInFlight: 100})
	l.SetCrawlDelay("c", "h", time.Second)
	if n := len(drive(l, c, "c", "h", 10*time.Second, 10*time.Millisecond, 0)); n < 10 || n > 11 {
		t.Errorf("%d requests in 10s with Crawl-delay 1s and no rate, want about 10", n)
	}
}

// TestPauseThenRamp: nothing during the pause, then 1/4 of the rate for
// a step, 1/2 for the next, then all of it; a step is max(1s, 1/rate).
func TestPauseThenRamp(t *testing.T) {
	l, c := newLimits(1)
	l.SetRule("b", Rule{Rate: 8, MaxInFlight: 8})
	until := c.Now().Add(5 * time.Second)
	l.Pause("b", "h", until)
	l.Pause("b", "h", c.Now().Add(time.Second)) // an earlier end changes nothing
	if _, wait, ok := l.TryStart("b", "h"); ok || wait != 5*time.Second {
		t.Fatalf("during the pause: ok %v wait %s; want refused for 5s", ok, wait)
	}
	starts := drive(l, c, "b", "h", 9*time.Second, 10*time.Millisecond, 0)
	count := func(from, to time.Duration) int {
		n := 0
		for _, s := range starts {
			if d := s.Sub(until); d >= from && d < to {
				n++
			}
		}
		return n
	}
	if n := count(-5*time.Second, 0); n != 0 {
		t.Errorf("%d requests during the pause", n)
	}
	for _, step := range []struct {
		from, to time.Duration
		lo, hi   int
	}{{0, time.Second, 2, 3}, {time.Second, 2 * time.Second, 4, 5}, {2 * time.Second, 4 * time.Second, 15, 17}} {
		if n := count(step.from, step.to); n < step.lo || n > step.hi {
			t.Errorf("%d requests from %s to %s after the pause, want %d to %d", n, step.from, step.to, step.lo, step.hi)
		}
	}
	// The in-flight share ramps too: 8 → 2, 4, then 8.
	l.Pause("b", "k", c.Now())
	open := 0
	for {
		if _, _, ok := l.TryStart("b", "k"); !ok {
			break
		}
		open++
	}
	if open != 1 { // one token of burst: the rate is the bound at once
		t.Errorf("%d opened at once at 8/s, want the burst of 1", open)
	}
	l.SetRule("n", Rule{MaxInFlight: 8})
	l.Pause("n", "k", c.Now())
	open = 0
	for {
		if _, _, ok := l.TryStart("n", "k"); !ok {
			break
		}
		open++
	}
	if open != 2 {
		t.Errorf("%d open right after a pause, want 1/4 of 8", open)
	}
}

// TestEvictionBound: a batch over 100,000 hosts keeps at most MaxHosts.
func TestEvictionBound(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0)}
	l := New(Config{Now: c.Now, MaxHosts: 1000})
	l.SetRule("b", Rule{Rate: 1, MaxInFlight: 1})
	held, _, _ := l.TryStart("b", "held") // open: never forgotten
	for i := range 100_000 {
		release, _, ok := l.TryStart("b", fmt.Sprintf("host-%d", i))
		if !ok {
			t.Fatalf("host %d refused its first request", i)
		}
		release()
		c.Advance(time.Millisecond)
	}
	if n := l.Hosts(); n > 1000 {
		t.Errorf("%d hosts kept, want at most 1000", n)
	}
	if _, _, ok := l.TryStart("b", "held"); ok {
		t.Error("the host with a request open was forgotten (its limiter reset)")
	}
	held()
	// Idle ones go after IdleAfter even under the bound.
	c.Advance(DefaultIdleAfter + time.Second)
	l.TryStart("b", "new")
	if n := l.Hosts(); n != 1 {
		t.Errorf("%d hosts kept after every other went idle, want 1", n)
	}
}

// TestTryStartNeverBlocks: refused calls return at once, with the wait,
// even on a paused, full, rate-limited host.
func TestTryStartNeverBlocks(t *testing.T) {
	l := New(Config{Share: FixedShare(1)}) // the real clock
	l.SetRule("b", Rule{Rate: 0.01, MaxInFlight: 1})
	l.TryStart("b", "h")
	l.Pause("b", "p", time.Now().Add(time.Hour))
	start := time.Now()
	for range 10000 {
		for _, h := range []string{"h", "p"} {
			if _, wait, ok := l.TryStart("b", h); ok || (h == "p" && wait < 59*time.Minute) {
				t.Fatalf("%s: ok %v wait %s", h, ok, wait)
			}
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("20,000 refused calls took %s", d)
	}
	if release, _, ok := l.TryStart("none", "h"); !ok || release == nil {
		t.Error("a batch without a rule was refused")
	}
}

func TestRateWaitSaysWhen(t *testing.T) {
	l, c := newLimits(1)
	l.SetRule("b", Rule{Rate: 2})
	r, _, _ := l.TryStart("b", "h")
	r()
	_, wait, ok := l.TryStart("b", "h")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("right after a request at 2/s: ok %v wait %s, want 500ms", ok, wait)
	}
	c.Advance(wait)
	if _, _, ok := l.TryStart("b", "h"); !ok {
		t.Error("refused once the wait had passed")
	}
}

func TestReleasedTellsOfAPlace(t *testing.T) {
	l, _ := newLimits(1)
	l.SetRule("b", Rule{MaxInFlight: 1})
	release, _, _ := l.TryStart("b", "h")
	freed := l.Released()
	if _, _, ok := l.TryStart("b", "h"); ok {
		t.Fatal("a second request open at max_in_flight 1")
	}
	select {
	case <-freed:
		t.Fatal("Released closed before any request ended")
	default:
	}
	release()
	select {
	case <-freed:
	default:
		t.Fatal("Released not closed when a request ended")
	}
	if _, _, ok := l.TryStart("b", "h"); !ok {
		t.Error("refused after the release")
	}
}

// TestTinyRateWaitDoesNotOverflow: a rule built by hand with a rate far
// under MinRate (ParseRate refuses it) still gives a wait that is long,
// never negative or wrapped round.
func TestTinyRateWaitDoesNotOverflow(t *testing.T) {
	for _, r := range []Rate{1e-7, 1e-12, 1e-300} {
		if d := r.interval(); d <= 0 || d < 1000*time.Hour {
			t.Errorf("interval at %v/s = %s, want a long positive one", float64(r), d)
		}
		clock := time.Unix(1e9, 0)
		l := New(Config{Now: func() time.Time { return clock }})
		l.SetRule("b", Rule{Rate: r})
		release, _, ok := l.TryStart("b", "h")
		if !ok {
			t.Fatalf("rate %v: the first request was refused", float64(r))
		}
		release()
		if _, wait, ok := l.TryStart("b", "h"); ok || wait < 1000*time.Hour {
			t.Errorf("rate %v/s: second request ok=%v wait %s, want a refusal with a long positive wait", float64(r), ok, wait)
		}
	}
}
