package codec

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The server checks a session's expiry and its MAC itself: a cookie kept
// past its time, edited, or made for another token opens nothing.
func TestSessionCookieExpiresOnTheServer(t *testing.T) {
	now := time.Now()
	cookie := func(v string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/decode", nil)
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: v})
		return r
	}
	good := session("token-a-long-enough-one-x", now.Add(time.Hour))
	exp, mac, _ := strings.Cut(good, ".")
	for name, tc := range map[string]struct {
		value string
		want  bool
	}{
		"valid":                  {good, true},
		"expired":                {session("token-a-long-enough-one-x", now.Add(-time.Second)), false},
		"expiry pushed back":     {"9999999999." + mac, false},
		"for another token":      {session("token-b-long-enough-one-x", now.Add(time.Hour)), false},
		"no expiry":              {mac, false},
		"expiry without its MAC": {exp + ".", false},
	} {
		if got := hasSession(cookie(tc.value), "token-a-long-enough-one-x", now); got != tc.want {
			t.Errorf("%s: accepted %v, want %v", name, got, tc.want)
		}
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" http://localhost:8080, HTTP://127.0.0.1:8080/ ,")
	if err != nil || strings.Join(got, " ") != "http://localhost:8080 http://127.0.0.1:8080" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, bad := range []string{"localhost:8080", "http://x/path", "ftp://x", "http://", "http://u:p@x"} {
		if _, err := ParseOrigins(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: got %v, want an error naming it", bad, err)
		}
	}
}
