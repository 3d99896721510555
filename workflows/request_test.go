package workflows

import (
	"encoding/json"
	"strings"
	"testing"
)

func validate(t *testing.T, raw string) (Settings, error) {
	t.Helper()
	var in Input
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	return in.Validate()
}

func TestValidateRequests(t *testing.T) {
	s, err := validate(t, `{"urls": ["https://a.example/x", {"url": "https://b.example/y", "headers": {"X-Tenant": "7", "authorization": "Bearer ${secret:OTHER}"}, "method": "POST", "body": "{}"}],
		"headers": {"Authorization": {"secret": "PARTNER_TOKEN", "hosts": ["*.example"]}, "User-Agent": "nightly/2"}, "retry_non_idempotent": true}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.URLs) != 2 || s.URLs[1] != "https://b.example/y" || s.Request == nil || len(s.PerURL) != 2 || s.PerURL[0] != nil || s.PerURL[1] == nil {
		t.Fatalf("settings %+v", s)
	}
	if h := s.Request.Headers; len(h) != 2 || h[0].Name != "Authorization" || h[0].Value != "${secret:PARTNER_TOKEN}" || h[0].Hosts[0] != "*.example" {
		t.Errorf("batch headers %+v", h)
	}
	if !s.Request.RetryUnsafe || s.PerURL[1].Method != "POST" || s.PerURL[1].Body.Text != "{}" {
		t.Errorf("requests %+v %+v", s.Request, s.PerURL[1])
	}
}

func TestValidateRefusesBadRequestsNamingWhere(t *testing.T) {
	for raw, want := range map[string]string{
		`{"urls": ["https://a.example/"], "headers": {"Host": "b.example"}}`:                                  "headers: Host",
		`{"urls": ["https://a.example/"], "headers": {"Range": "bytes=0-"}}`:                                  "headers: Range",
		`{"urls": ["https://a.example/"], "headers": {"Connection": "close"}}`:                                "hop-by-hop",
		`{"urls": ["https://a.example/"], "headers": {"X": 5}}`:                                               "headers:",
		`{"urls": ["https://a.example/"], "headers": {"X": {"secret": "has space"}}}`:                         "secret name",
		`{"urls": ["https://a.example/"], "headers": {"a": "1", "A": "2"}}`:                                   "same header",
		`{"urls": ["https://a.example/"], "method": "DELETE"}`:                                                "method",
		`{"urls": ["https://a.example/"], "method": "post"}`:                                                  "capitals",
		`{"urls": ["https://a.example/"], "body": "x"}`:                                                       "body: only a POST or a PUT",
		`{"urls": ["https://a.example/", {"url": "https://b.example/", "headers": {"Content-Length": "1"}}]}`: "urls[1]: headers: Content-Length",
		`{"urls": ["https://a.example/", {"url": "https://b.example/", "color": "red"}]}`:                     "urls[1]: ",
		`{"urls": ["https://a.example/", {"headers": {}}]}`:                                                   "urls[1]: ",
		`{"urls": ["https://a.example/", {"url": "https://b.example/", "body": "x"}]}`:                        "urls[1]: body",
		`{"urls": ["https://a.example/"], "body": {"key": "../etc/passwd"}, "method": "POST"}`:                "body: key",
	} {
		_, err := validate(t, raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to say %q", raw, err, want)
		}
	}
}

// An input marshalled in Go (as the SDK sends it) reads back the same.
func TestInputWithRequestsRoundTrips(t *testing.T) {
	raw := `{"urls":["https://a.example/x",{"url":"https://b.example/y","headers":{"Authorization":{"secret":"T"}},"method":"HEAD"}],"headers":{"Accept":"text/html"}}`
	var in Input
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var back Input
	_ = json.Unmarshal(b, &back)
	s, err := back.Validate()
	if err != nil || s.PerURL[1].Method != "HEAD" || s.PerURL[1].Headers[0].Value != "${secret:T}" || s.Request.Headers[0].Value != "text/html" {
		t.Errorf("round trip %s: %+v, %v", b, s, err)
	}
}
