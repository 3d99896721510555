package client

import "testing"

func TestInvalidInputField(t *testing.T) {
	for msg, want := range map[string]string{
		"urls[3]: not an absolute URL":                   "urls[3]",
		"urls_file line 17: not an absolute URL":         "urls_file line 17",
		"max_in_flight: must be between 1 and 5000":      "max_in_flight",
		"per_host.rate: \"5/h\" is not N/s or N/m":       "per_host.rate",
		"previous[2]: no url":                            "previous[2]",
		"input: unknown field bogus":                     "",
		"urls and urls_file: give one or the other":      "",
		"process: no CPU worker has the processor shout": "process",
		"a message naming nothing":                       "",
	} {
		if got := invalidInput(msg, nil).Field; got != want {
			t.Errorf("field of %q = %q, want %q", msg, got, want)
		}
	}
}
