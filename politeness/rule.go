package politeness

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Rate is requests per second; 0 means no rate limit.
type Rate float64

// MaxRate bounds a rate: above it a host is not being spared anyway.
const MaxRate Rate = 10000

// MinRate is the lowest rate taken, one request per 10 minutes ("0.1/m"):
// below it a chunk of a host's URLs would outlast any timeout.
const MinRate Rate = 1.0 / 600

// ParseRate reads "N/s" or "N/m" (N a positive number: "2/s", "30/m",
// "0.5/s"), from MinRate to MaxRate. Its error says what was wrong with s; callers prefix the
// field or flag it came from.
func ParseRate(s string) (Rate, error) {
	bad := fmt.Errorf("%q is not N/s or N/m (such as \"2/s\" or \"30/m\")", clip(s))
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, bad
	}
	var r Rate
	switch strings.TrimSpace(unit) {
	case "s":
		r = Rate(n)
	case "m":
		r = Rate(n / 60)
	default:
		return 0, bad
	}
	if n <= 0 {
		return 0, fmt.Errorf("%q: the rate must be above zero", clip(s))
	}
	if r > MaxRate {
		return 0, fmt.Errorf("%q is over the limit of %g/s", clip(s), float64(MaxRate))
	}
	if r < MinRate*(1-1e-9) {
		return 0, fmt.Errorf("%q is under the floor of one request per 10 minutes (\"0.1/m\")", clip(s))
	}
	return r, nil
}

// String is the rate as ParseRate reads it.
func (r Rate) String() string {
	if r <= 0 {
		return "none"
	}
	return strconv.FormatFloat(float64(r), 'g', -1, 64) + "/s"
}

// interval is the time between two requests at r (0 for no rate).
func (r Rate) interval() time.Duration {
	if r <= 0 {
		return 0
	}
	return seconds(1 / float64(r))
}

// seconds is s seconds as a Duration, the longest one for any s beyond
// it (a rate built by hand, far under MinRate, does not overflow).
func seconds(s float64) time.Duration {
	if d := s * float64(time.Second); d < float64(math.MaxInt64) {
		return time.Duration(d)
	}
	return math.MaxInt64
}

// Rule is what one batch allows itself against one host, over all the
// fetch workers: at most MaxInFlight requests open at once and at most
// Rate requests a second. Zero fields do not limit.
type Rule struct {
	MaxInFlight int  `json:"max_in_flight,omitempty"`
	Rate        Rate `json:"rate,omitempty"`
}

// Limits tells whether the rule limits anything.
func (r Rule) Limits() bool { return r.MaxInFlight > 0 || r.Rate > 0 }

// Or is r with its zero fields taken from def (a worker's defaults under
// a batch's own rule).
func (r Rule) Or(def Rule) Rule {
	if r.MaxInFlight == 0 {
		r.MaxInFlight = def.MaxInFlight
	}
	if r.Rate == 0 {
		r.Rate = def.Rate
	}
	return r
}

// String describes the rule for logs.
func (r Rule) String() string {
	if !r.Limits() {
		return "none"
	}
	inFlight := "any"
	if r.MaxInFlight > 0 {
		inFlight = strconv.Itoa(r.MaxInFlight)
	}
	return fmt.Sprintf("max_in_flight %s, rate %s", inFlight, r.Rate)
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
