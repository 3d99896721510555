package activities

import "time"

// Observer hears what the activities do, for metrics. Its methods must be
// safe for concurrent use.
type Observer interface {
	// URLDone reports a URL's final outcome, once, from the step that
	// decided it: the fetch for a URL that ends there (a 404), the hash
	// for the others.
	URLDone(outcome string)
	// Fetched reports a URL's fetch time, whatever its outcome, and the
	// bytes of its body (0 when it has none).
	Fetched(bytes int64, d time.Duration)
	// Hashed reports a hashed body and the time it took.
	Hashed(bytes int64, d time.Duration)
	// SlotsInUse moves the count of busy slots of pool "fetch" or "cpu".
	SlotsInUse(pool string, delta int)
}

// HeldObserver is an Observer that also hears of the bytes of bodies a
// fetch worker's running chunk fetches hold, not yet handed to the hash
// step (bounded by the worker's backlog bound).
type HeldObserver interface {
	Held(delta int64)
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
