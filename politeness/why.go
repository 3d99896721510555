package politeness

import "time"

// Reasons a host takes no request now (Wait.Reason).
const (
	ReasonRate       = "rate"        // its rate's next request is not due yet
	ReasonInFlight   = "in_flight"   // its max_in_flight requests are open
	ReasonPaused     = "paused"      // a Retry-After stopped it (Wait.Until)
	ReasonCrawlDelay = "crawl_delay" // its robots.txt Crawl-delay paces it
)

// Wait says why a batch's host takes no request now, as far as this
// worker holds it back.
type Wait struct {
	// Reason is one of the Reason constants ("": the host is ready).
	Reason string
	// Until is when a pause ends (Reason paused).
	Until time.Time
	// Rate is the rate this worker holds the host to now (0: none).
	Rate Rate
	// MaxInFlight is this worker's cap of open requests to it (0: none).
	MaxInFlight int
}

// Why tells why batch's host takes no request now. It changes nothing:
// a host not kept, or of a batch without a rule, is ready.
func (l *HostLimits) Why(batch, host string) Wait {
	l.mu.Lock()
	defer l.mu.Unlock()
	br := l.rules[batch]
	e, kept := l.hosts[hostKey{batch, host}]
	if br == nil || !kept {
		return Wait{}
	}
	h := e.Value.(*hostState)
	now := l.cfg.Now()
	held := l.held(br.rule)
	r, inFlight, pauseLeft := l.effective(br.rule, h, now, held)
	w := Wait{Rate: r, MaxInFlight: inFlight}
	switch {
	case pauseLeft > 0 && now.Before(h.pausedUntil):
		w.Reason, w.Until = ReasonPaused, now.Add(pauseLeft)
	case pauseLeft > 0: // a newly registered worker holds back (Presence)
		w.Reason, w.Until = ReasonRate, now.Add(pauseLeft)
		if w.Rate == 0 {
			w.Rate = br.rule.Rate // the rule's, as it holds back for its share of it
		}
	case inFlight > 0 && h.inFlight >= inFlight, held && now.Before(h.slotRetry):
		w.Reason = ReasonInFlight
	case r > 0 && h.lim.TokensAt(now) < 1:
		w.Reason = ReasonRate
		if h.crawlDelay > 0 && (br.rule.Rate == 0 || Rate(float64(time.Second)/float64(h.crawlDelay)) < br.rule.Rate) {
			w.Reason = ReasonCrawlDelay
		}
	}
	return w
}
