package politeness

import (
	"testing"
	"time"
)

// Why names what holds a host back: its rate, its requests open, a
// pause (until when) or its robots.txt Crawl-delay; a ready host, or one
// of a batch without a rule, has no reason.
func TestWhySaysWhatHoldsAHostBack(t *testing.T) {
	l, c := newLimits(1)
	if w := l.Why("none", "a.test"); w.Reason != "" {
		t.Errorf("a batch without a rule: %+v, want no reason", w)
	}
	l.SetRule("b", Rule{MaxInFlight: 1, Rate: 2})
	release, _, ok := l.TryStart("b", "a.test")
	if !ok {
		t.Fatal("the first request was refused")
	}
	if w := l.Why("b", "a.test"); w.Reason != ReasonInFlight || w.MaxInFlight != 1 {
		t.Errorf("one request open of max_in_flight 1: %+v, want in_flight", w)
	}
	release()
	if w := l.Why("b", "a.test"); w.Reason != ReasonRate || w.Rate != 2 {
		t.Errorf("released at once, at 2/s: %+v, want rate 2/s", w)
	}
	c.Advance(time.Second)
	if w := l.Why("b", "a.test"); w.Reason != "" {
		t.Errorf("a second later: %+v, want ready", w)
	}
	until := c.Now().Add(30 * time.Second)
	l.Pause("b", "a.test", until)
	if w := l.Why("b", "a.test"); w.Reason != ReasonPaused || !w.Until.Equal(until) {
		t.Errorf("paused: %+v, want paused until %s", w, until)
	}
	l.SetCrawlDelay("b", "c.test", 4*time.Second)
	release, _, ok = l.TryStart("b", "c.test")
	if !ok {
		t.Fatal("c.test's first request was refused")
	}
	release()
	if w := l.Why("b", "c.test"); w.Reason != ReasonCrawlDelay || w.Rate != 0.25 {
		t.Errorf("a Crawl-delay of 4s under 2/s: %+v, want crawl_delay at 0.25/s", w)
	}
	if n := l.Hosts(); n != 2 {
		t.Errorf("%d hosts kept, want 2: Why keeps none of its own", n)
	}
	l.Why("b", "unknown.test")
	if n := l.Hosts(); n != 2 {
		t.Errorf("%d hosts kept after asking of another, want 2", n)
	}
}
