package activities

import (
	"bytes"
	"testing"

	"go.temporal.io/sdk/converter"
)

// A hash heartbeat says first, in a line, how far its chunk is (the Web
// UI shows the pending activity's details); a worker of an earlier
// release reads it as before, and a checkpoint without the line resumes
// as one with it.
func TestHashHeartbeatSaysHowFarItsChunkIs(t *testing.T) {
	p := &hashProgress{staged: true, total: 3}
	p.add(Result{URL: "http://127.0.0.1/a", Outcome: OutcomeOK, SHA256: "ab"})
	cp := p.checkpoint()
	if cp.Summary != "1/3 hashed" {
		t.Errorf("summary %q, want %q", cp.Summary, "1/3 hashed")
	}
	dc := converter.GetDefaultDataConverter()
	payloads, err := dc.ToPayloads(cp)
	if err != nil {
		t.Fatal(err)
	}
	if data := payloads.GetPayloads()[0].GetData(); !bytes.HasPrefix(data, []byte(`{"summary":"1/3 hashed","results":[`)) {
		t.Errorf("heartbeat details %s, want the summary first", data)
	}
	// An earlier release's checkpoint, without the summary.
	var earlier struct {
		Results []Result `json:"results"`
		Blob    string   `json:"blob,omitempty"`
	}
	if err := dc.FromPayloads(payloads, &earlier); err != nil || len(earlier.Results) != 1 || earlier.Results[0].SHA256 != "ab" {
		t.Errorf("an earlier worker reads %+v (%v)", earlier, err)
	}
	old, err := dc.ToPayloads(earlier)
	if err != nil {
		t.Fatal(err)
	}
	var resumed hashCheckpoint
	if err := dc.FromPayloads(old, &resumed); err != nil || len(resumed.Results) != 1 || resumed.Summary != "" {
		t.Errorf("an earlier checkpoint resumes as %+v (%v)", resumed, err)
	}
}
