package activities

import (
	"fmt"
	"time"

	"github.com/batchfetch/batchfetch/politeness"
)

// hostTooLate is a URL's end when its host will not take its request
// before the URL's url_timeout runs out: there is no point waiting.
type hostTooLate struct{ fail *failure }

func (e *hostTooLate) Error() string { return e.fail.msg }

// tooLate is the URL's final failure (outcome timeout, as the wait would
// have ended it) when its host takes its next request only in wait, past
// deadline, the end of the URL's url_timeout (zero: it has none); nil
// while the wait fits.
func tooLate(limits *politeness.HostLimits, batch, host string, wait time.Duration, deadline time.Time) *failure {
	now := time.Now()
	if wait <= 0 || deadline.IsZero() || !now.Add(wait).After(deadline) || limits.Settling() > 0 {
		return nil // (a worker's start holds every host back a moment: not the host's doing)
	}
	var why string
	switch w := limits.Why(batch, host); w.Reason {
	case politeness.ReasonPaused:
		why = fmt.Sprintf("host %s asked to wait until %s (Retry-After)", host, clock(w.Until, now))
	case politeness.ReasonCrawlDelay:
		why = fmt.Sprintf("host %s takes its next request at %s (its robots.txt Crawl-delay)", host, clock(now.Add(wait), now))
	default:
		why = fmt.Sprintf("host %s takes its next request at %s (per_host rate, shared out between the fetch workers)", host, clock(now.Add(wait), now))
	}
	return &failure{outcome: OutcomeTimeout, msg: why + "; past this URL's url_timeout"}
}

// clock is t as a time of day (UTC), with its date when it is not within
// a day of now.
func clock(t, now time.Time) string {
	if t.Sub(now) < 24*time.Hour {
		return t.UTC().Format("15:04:05 UTC")
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// urlDeadline is when the URL at i, not started in this fetch, would run
// out of its url_timeout if it started now (zero: it has none).
func (c *chunkRun) urlDeadline(i int) time.Time {
	p := c.req.Policy
	if p.URLTimeout <= 0 {
		return time.Time{}
	}
	st := c.states[i]
	st.mu.Lock()
	first := st.first
	st.mu.Unlock()
	if first.IsZero() {
		first = time.Now()
	}
	return first.Add(p.URLTimeout)
}

// endTooLate ends the URL at i, not started, with fail: its host will
// not take it in its url_timeout.
func (c *chunkRun) endTooLate(i int, fail *failure) {
	t := c.tasks[i]
	st := c.states[i]
	st.mu.Lock()
	attempts, first := st.attempts, st.first
	st.mu.Unlock()
	out := finish(Fetched{Index: t.Index, URL: t.URL, Prev: t.Prev, Attempts: attempts}, fail)
	if !first.IsZero() {
		out.ElapsedMS = time.Since(first).Milliseconds()
	}
	observer(c.f.Observer).Fetched(0, time.Duration(out.ElapsedMS)*time.Millisecond)
	c.mu.Lock()
	c.items[i], c.done[i] = out, true
	c.mu.Unlock()
	if c.req.Policy.FailFast {
		c.stopAll()
	}
	select {
	case c.ended <- struct{}{}: // byHost looks again at once
	default:
	}
}
