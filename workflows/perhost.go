package workflows

import (
	"fmt"
	"time"

	"github.com/batchfetch/batchfetch/politeness"
)

// PerHost is a batch's per-host rule, as Input gives it: at most
// MaxInFlight of its requests open at once to any one host, and at most
// Rate ("2/s", "30/m") a second, over all the fetch workers.
type PerHost struct {
	MaxInFlight int    `json:"max_in_flight,omitempty"`
	Rate        string `json:"rate,omitempty"`
}

// wirePerHost is PerHost as it arrives in JSON: an explicit 0 is an
// error, not "no limit".
type wirePerHost struct {
	MaxInFlight *int    `json:"max_in_flight"`
	Rate        *string `json:"rate"`
}

// read checks what JSON gave, as far as decoding can tell.
func (w *wirePerHost) read() (*PerHost, string) {
	if w == nil {
		return nil, ""
	}
	p := &PerHost{}
	if w.MaxInFlight != nil {
		if *w.MaxInFlight <= 0 {
			return nil, fmt.Sprintf("per_host.max_in_flight: must be at least 1, got %d", *w.MaxInFlight)
		}
		p.MaxInFlight = *w.MaxInFlight
	}
	if w.Rate != nil {
		if *w.Rate == "" {
			return nil, "per_host.rate: must not be empty (leave it out for no rate)"
		}
		p.Rate = *w.Rate
	}
	return p, ""
}

// rule validates a per_host rule (nil: none).
func (p *PerHost) rule() (*politeness.Rule, error) {
	if p == nil {
		return nil, nil
	}
	if p.MaxInFlight == 0 && p.Rate == "" {
		return nil, fmt.Errorf("per_host: give max_in_flight, rate or both")
	}
	if p.MaxInFlight < 0 || p.MaxInFlight > MaxInFlightLimit {
		return nil, fmt.Errorf("per_host.max_in_flight: must be between 1 and %d, got %d", MaxInFlightLimit, p.MaxInFlight)
	}
	r := &politeness.Rule{MaxInFlight: p.MaxInFlight}
	if p.Rate != "" {
		rate, err := politeness.ParseRate(p.Rate)
		if err != nil {
			return nil, fmt.Errorf("per_host.rate: %w", err)
		}
		r.Rate = rate
	}
	return r, nil
}

// paceTime is how long a chunk of n URLs may take at the batch's
// per-host rate, every attempt of every URL to one host (0 without a
// rate), at most MaxDuration (a chunk's timeout is no longer anyway).
func (s Settings) paceTime(n int) time.Duration {
	if s.PerHost == nil || s.PerHost.Rate <= 0 {
		return 0
	}
	secs := float64(n*max(s.MaxAttempts, 1)) / float64(s.PerHost.Rate)
	if secs >= MaxDuration.Seconds() {
		return MaxDuration
	}
	return time.Duration(secs * float64(time.Second))
}
