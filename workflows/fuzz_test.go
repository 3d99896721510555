package workflows

import (
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/activities"
)

// FuzzInput feeds arbitrary bytes to the input decoder and validator, as
// `temporal workflow start --input` could: decoding never fails (the
// workflow reports the problem), and what Validate accepts is within the
// documented limits. Seeds: testdata/fuzz/FuzzInput and the cases below.
//
//	go test -run XXX -fuzz FuzzInput -fuzztime 30s ./workflows
func FuzzInput(f *testing.F) {
	for _, seed := range []string{
		`{"urls":["https://example.com/"]}`,
		`{"urls":["http://a.example/x","https://b.example/y?z=1"],"mode":"fail_fast","max_in_flight":7,"attempt_timeout":"1.5s","url_timeout":"1m","max_attempts":5,"initial_backoff":"250ms","cpu_task_queue":"q"}`,
		`{"urls_file":"inputs/list.txt"}`,
		`{"urls":[]}`, `null`, `[]`, `{"urls":"x"}`, `{"urls":["https://u:p@h/"]}`,
		`{"urls":["http://h/"],"max_in_flight":-1}`, `{"urls":["http://h/"],"attempt_timeout":"-1s"}`,
		`{"urls":["http://h/"],"max_in_flight":5000}`, `{"urls":["http://h/"],"max_in_flight":5001}`,
		`{"urls_file":"../../etc/passwd"}`, `{"urls":["javascript:alert(1)"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in Input
		if err := in.UnmarshalJSON(data); err != nil {
			t.Fatalf("UnmarshalJSON failed (the workflow task would fail forever): %v", err)
		}
		s, err := in.Validate()
		if err != nil {
			// A leak is the password of a URL's userinfo in the error: the
			// input has "hunter2" only as such a password.
			d := string(data)
			if strings.Contains(d, ":hunter2@") && strings.Count(d, "hunter2") == strings.Count(d, ":hunter2@") && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks a password: %v", err)
			}
			return
		}
		if s.URLsFile == "" && len(s.URLs) == 0 {
			t.Fatalf("accepted an input with no URLs: %q", data)
		}
		for _, u := range s.URLs {
			if err := activities.CheckURL(u); err != nil {
				t.Fatalf("accepted a bad URL %q: %v", u, err)
			}
		}
		if s.MaxInFlight < 1 || s.MaxInFlight > MaxInFlightLimit || s.MaxAttempts < 1 || s.MaxAttempts > MaxAttemptsLimit ||
			s.AttemptTimeout <= 0 || s.AttemptTimeout > MaxDuration || s.InitialBackoff <= 0 || s.URLTimeout < 0 || s.CPUTaskQueue == "" {
			t.Fatalf("accepted out-of-range settings %+v from %q", s, data)
		}
		if strings.HasPrefix(s.URLsFile, "/") || strings.Contains(s.URLsFile, "..") && checkKey(s.URLsFile) != nil {
			t.Fatalf("accepted a blob key outside the store: %q", s.URLsFile)
		}
	})
}
