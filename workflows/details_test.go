package workflows

import (
	"strings"
	"testing"
)

// A failure's text comes from the server fetched: in the Web UI's
// markdown it is shown as it is, not made a link, an image or HTML.
func TestAFailureInTheCurrentDetailsIsNotMarkdown(t *testing.T) {
	const hostile = "HTTP 401 [sign in again](http://127.0.0.1/phish) ![](http://127.0.0.1/t.png) <img src=x onerror=alert(1)> `x` **"
	got := detailsText(Progress{Total: 2, Done: 1, Failed: 1, Recent: []Result{{URL: "http://127.0.0.1/a", Outcome: OutcomeHTTPError, Status: 401, Error: hostile}}})
	line := got[strings.Index(got, "- "):]
	want := "- `http://127.0.0.1/a` http_error 401: `HTTP 401 [sign in again](http://127.0.0.1/phish) ![](http://127.0.0.1/t.png) <img src=x onerror=alert(1)> 'x' **`\n"
	if line != want {
		t.Errorf("the failure's line:\n%q\nwant\n%q", line, want)
	}
}
