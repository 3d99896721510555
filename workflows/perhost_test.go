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
