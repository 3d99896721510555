package workflows

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/politeness"
)

func TestPerHostValidates(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`"per_host":{"max_in_flight":0}`, "per_host.max_in_flight: must be at least 1, got 0"},
		{`"per_host":{"max_in_flight":-1,"rate":"2/s"}`, "per_host.max_in_flight: must be at least 1, got -1"},
		{`"per_host":{"max_in_flight":5001}`, "per_host.max_in_flight: must be between 1 and 5000, got 5001"},
		{`"per_host":{"rate":"x"}`, `per_host.rate: "x" is not N/s or N/m`},
		{`"per_host":{"rate":"2/h"}`, `per_host.rate: "2/h" is not N/s or N/m`},
		{`"per_host":{"rate":"0/s"}`, `per_host.rate: "0/s": the rate must be above zero`},
		{`"per_host":{"rate":"0.0000001/s"}`, `per_host.rate: "0.0000001/s" is under the floor of one request per 10 minutes ("0.1/m")`},
		{`"per_host":{"rate":""}`, "per_host.rate: must not be empty"},
		{`"per_host":{"rate":2}`, "per_host.rate: wrong JSON type: got number, want string"},
		{`"per_host":{}`, "per_host: give max_in_flight, rate or both"},
		{`"per_host":{"delay":"1s"}`, `unknown field "delay"`},
	} {
		var in Input
		_ = in.UnmarshalJSON([]byte(`{"urls":["http://a.example/"],` + tc.json + `}`))
		_, err := in.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.json, err, tc.want)
		}
	}
	var in Input
	_ = in.UnmarshalJSON([]byte(`{"urls":["http://a.example/"],"per_host":{"max_in_flight":2,"rate":"30/m"}}`))
	s, err := in.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if want := (politeness.Rule{MaxInFlight: 2, Rate: 0.5}); s.PerHost == nil || *s.PerHost != want {
		t.Errorf("per_host read as %+v, want %+v", s.PerHost, want)
	}
}

// TestPerHostOnlyWhenGiven: a batch without per_host sends the same
// fetch policy as before (no per_host field), so its activities and
// recorded histories are unchanged.
func TestPerHostOnlyWhenGiven(t *testing.T) {
	var in Input
	_ = in.UnmarshalJSON([]byte(`{"urls":["http://a.example/"]}`))
	s, err := in.Validate()
	if err != nil {
		t.Fatal(err)
	}
	e := &engine{s: s}
	b, _ := json.Marshal(e.policy())
	if strings.Contains(string(b), "per_host") {
		t.Errorf("policy without per_host carries it: %s", b)
	}
	if e.s.paceTime(100) != 0 {
		t.Error("a chunk's timeout grew for a batch without per_host")
	}
	e.s.PerHost = &politeness.Rule{MaxInFlight: 2, Rate: 5}
	b, _ = json.Marshal(e.policy())
	if !strings.Contains(string(b), `"per_host":{"max_in_flight":2,"rate":5}`) {
		t.Errorf("policy with per_host: %s", b)
	}
}

// TestTinyRateChunkTimeout: at the lowest rate taken, and at one far
// under it (a rule built by hand), a chunk's timeout is positive and at
// most MaxDuration, never wrapped round.
func TestTinyRateChunkTimeout(t *testing.T) {
	for _, r := range []politeness.Rate{politeness.MinRate, 1e-7, 1e-300} {
		e := &engine{s: Settings{MaxAttempts: MaxAttemptsLimit, AttemptTimeout: DefaultAttemptTimeout, PerHost: &politeness.Rule{Rate: r}}}
		if p := e.s.paceTime(StagedChunkSize); p <= 0 || p > MaxDuration {
			t.Errorf("rate %v/s: paceTime %s, want in (0, %s]", float64(r), p, MaxDuration)
		}
		for _, conc := range []int{1, 100} {
			if d := e.chunkTimeout(StagedChunkSize, conc); d != MaxDuration {
				t.Errorf("rate %v/s, concurrency %d: chunk timeout %s, want %s", float64(r), conc, d, MaxDuration)
			}
		}
	}
	e := &engine{s: Settings{MaxAttempts: 1, URLTimeout: MaxDuration}}
	if d := e.chunkTimeout(MaxURLs, 1); d != MaxDuration {
		t.Errorf("a million URLs of url_timeout %s one at a time: chunk timeout %s, want %s", MaxDuration, d, MaxDuration)
	}
}
