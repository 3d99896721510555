package workflows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/activities"
)

func TestValidateDefaults(t *testing.T) {
	var in Input
	if err := json.Unmarshal([]byte(`{"urls":["https://example.com/a"]}`), &in); err != nil {
		t.Fatal(err)
	}
	s, err := in.Validate()
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := Settings{
		URLs:           []string{"https://example.com/a"},
		MaxInFlight:    100,
		AttemptTimeout: 30 * time.Second,
		MaxAttempts:    3,
		InitialBackoff: 500 * time.Millisecond,
		CPUTaskQueue:   "batchfetch-cpu",
	}
	if s.MaxInFlight != want.MaxInFlight || s.AttemptTimeout != want.AttemptTimeout || s.MaxAttempts != want.MaxAttempts ||
		s.InitialBackoff != want.InitialBackoff || s.CPUTaskQueue != want.CPUTaskQueue || s.FailFast || s.URLTimeout != 0 {
		t.Errorf("got %+v, want %+v", s, want)
	}
}

func TestValidateAllFields(t *testing.T) {
	var in Input
	raw := `{"urls":["http://a.example/x","https://b.example/y?z=1"],"mode":"fail_fast","max_in_flight":7,
		"attempt_timeout":"1.5s","url_timeout":"1m","max_attempts":5,"initial_backoff":"250ms","cpu_task_queue":"hashers"}`
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	s, err := in.Validate()
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !s.FailFast || s.MaxInFlight != 7 || s.AttemptTimeout != 1500*time.Millisecond || s.URLTimeout != time.Minute ||
		s.MaxAttempts != 5 || s.InitialBackoff != 250*time.Millisecond || s.CPUTaskQueue != "hashers" || len(s.URLs) != 2 {
		t.Errorf("got %+v", s)
	}
}

// The contract's largest max_in_flight is accepted as asked.
func TestValidateAcceptsTheLargestMaxInFlight(t *testing.T) {
	var in Input
	if err := json.Unmarshal([]byte(`{"urls":["http://a.example/"],"max_in_flight":5000}`), &in); err != nil {
		t.Fatal(err)
	}
	s, err := in.Validate()
	if err != nil || s.MaxInFlight != 5000 {
		t.Fatalf("max_in_flight 5000: got %d, %v; want 5000 accepted", s.MaxInFlight, err)
	}
}

func TestValidateRejects(t *testing.T) {
	many := make([]string, MaxURLs+1)
	for i := range many {
		many[i] = "http://example.com/"
	}
	manyJSON, _ := json.Marshal(map[string]any{"urls": many})
	cases := []struct {
		name, json, want string
	}{
		{"missing urls", `{}`, "urls: must list at least one URL"},
		{"empty urls", `{"urls":[]}`, "urls: must list at least one URL"},
		{"null", `null`, "expected a JSON object"},
		{"array", `[1]`, "expected a JSON object"},
		{"not JSON", `{"urls":`, "invalid JSON"},
		{"file scheme", `{"urls":["file:///etc/passwd"]}`, `urls[0]: "file:///etc/passwd": scheme "file" is not supported`},
		{"ftp scheme", `{"urls":["http://ok.example/","ftp://x.example/f"]}`, `urls[1]: "ftp://x.example/f": scheme "ftp"`},
		{"javascript", `{"urls":["javascript:alert(1)"]}`, `urls[0]: "javascript:alert(1)": scheme "javascript"`},
		{"relative", `{"urls":["/just/a/path"]}`, `urls[0]: "/just/a/path" is not an absolute URL`},
		{"no host", `{"urls":["http:///x"]}`, `urls[0]: "http:///x" has no host`},
		{"bad escape", `{"urls":["http://a.example/%zz"]}`, `urls[0]: "http://a.example/%zz" is not a URL`},
		{"credentials", `{"urls":["https://bob:hunter2@a.example/"]}`, `urls[0]: "https://bob:xxxxx@a.example/": credentials in URLs`},
		{"huge url", `{"urls":["http://a.example/` + strings.Repeat("a", activities.MaxURLLength) + `"]}`, "urls[0]: URL of 8209 bytes is over the limit of 8192"},
		{"too many", string(manyJSON), "urls: 1000001 URLs is over the limit of 1000000"},
		{"unknown field", `{"urls":["http://a.example/"],"max_inflight":3}`, `unknown field "max_inflight"`},
		{"urls wrong type", `{"urls":"http://a.example/"}`, "urls: wrong JSON type: got string, want array"},
		{"count wrong type", `{"urls":["http://a.example/"],"max_attempts":"3"}`, "max_attempts: wrong JSON type: got string, want number"},
		{"duration wrong type", `{"urls":["http://a.example/"],"attempt_timeout":30}`, "attempt_timeout: wrong JSON type: got number, want string"},
		{"bad mode", `{"urls":["http://a.example/"],"mode":"fast"}`, `mode: "fast" is not one of "collect", "fail_fast"`},
		{"zero in flight", `{"urls":["http://a.example/"],"max_in_flight":0}`, "max_in_flight: must be at least 1, got 0"},
		{"negative in flight", `{"urls":["http://a.example/"],"max_in_flight":-2}`, "max_in_flight: must be at least 1, got -2"},
		{"in flight too high", `{"urls":["http://a.example/"],"max_in_flight":5001}`, "max_in_flight: must be between 1 and 5000, got 5001"},
		{"zero attempts", `{"urls":["http://a.example/"],"max_attempts":0}`, "max_attempts: must be at least 1, got 0"},
		{"too many attempts", `{"urls":["http://a.example/"],"max_attempts":1000}`, "max_attempts: must be between 1 and 100"},
		{"bad duration", `{"urls":["http://a.example/"],"attempt_timeout":"30"}`, `attempt_timeout: "30" is not a duration`},
		{"negative duration", `{"urls":["http://a.example/"],"url_timeout":"-1s"}`, `url_timeout: must be positive, got "-1s"`},
		{"zero duration", `{"urls":["http://a.example/"],"initial_backoff":"0s"}`, `initial_backoff: must be positive`},
		{"empty duration", `{"urls":["http://a.example/"],"attempt_timeout":""}`, "attempt_timeout: must not be empty"},
		{"huge duration", `{"urls":["http://a.example/"],"attempt_timeout":"1000h"}`, "attempt_timeout: 1000h0m0s is over the limit of 24h0m0s"},
		{"trailing data", `{"urls":["http://a.example/"]} {}`, "trailing data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Call UnmarshalJSON directly: json.Unmarshal would refuse
			// malformed JSON before reaching it.
			var in Input
			if err := in.UnmarshalJSON([]byte(tc.json)); err != nil {
				t.Fatalf("Unmarshal must not fail (the workflow reports the problem): %v", err)
			}
			_, err := in.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %s", clip(tc.json))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks a password: %q", err)
			}
		})
	}
}

func TestDuplicateURLsAreKept(t *testing.T) {
	in := Input{URLs: []string{"http://a.example/", "http://a.example/"}}
	s, err := in.Validate()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.URLs) != 2 {
		t.Errorf("got %d URLs, want both occurrences", len(s.URLs))
	}
}
