package activities

import "time"

// Observer hears what the activities do, for metrics. Its methods must be
// safe for concurrent use.
type Observer interface {
	// URLDone reports a URL's final outcome (from the hash step, which
	// every URL that was not canceled goes through).
	URLDone(outcome string)
	// Fetched reports a stored body and the URL's fetch time.
	Fetched(bytes int64, d time.Duration)
	// Hashed reports a hashed body and the time it took.
	Hashed(bytes int64, d time.Duration)
	// SlotsInUse moves the count of busy slots of pool "fetch" or "cpu".
	SlotsInUse(pool string, delta int)
}

type nopObserver struct{}

func (nopObserver) URLDone(string)               {}
func (nopObserver) Fetched(int64, time.Duration) {}
func (nopObserver) Hashed(int64, time.Duration)  {}
func (nopObserver) SlotsInUse(string, int)       {}

func observer(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}
