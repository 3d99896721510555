package workflows

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every `--input '...'` of the README's temporal and tctl lines (a line
// break after --input too) is an input the contract takes as it is.
func TestReadmeCLIInputsAreValidInputs(t *testing.T) {
	inputs := regexp.MustCompile(`--input\s*(?:\\\n\s*)?'([^']+)'`).FindAllStringSubmatch(readme(t), -1)
	if len(inputs) < 3 {
		t.Fatalf("%d --input lines in the README, want the contract's two and the credentials one", len(inputs))
	}
	withSecret := 0
	for _, m := range inputs {
		s, err := validate(t, m[1])
		if err != nil {
			t.Errorf("README input %s: %v", m[1], err)
			continue
		}
		if s.Request == nil {
			continue
		}
		for _, h := range s.Request.Headers {
			if h.Name == "Authorization" && h.Value == "${secret:PARTNER_TOKEN}" && len(h.Hosts) == 1 && h.Hosts[0] == "api.partner.example" {
				withSecret++
			}
		}
	}
	if withSecret != 1 {
		t.Errorf("%d README inputs name the secret PARTNER_TOKEN for Authorization, limited to api.partner.example; want the credentials one", withSecret)
	}
}

// Every complete `{"url": ...}` entry the README shows (a code span may
// wrap across lines) is a valid entry of urls, and a valid line of a URL
// file as the starter reads it.
func TestReadmeURLEntriesAreValid(t *testing.T) {
	spans := regexp.MustCompile("`(\\{\"url\":[^`]*)`").FindAllStringSubmatch(readme(t), -1)
	n := 0
	for _, m := range spans {
		entry := strings.Join(strings.Fields(m[1]), " ")
		if strings.Contains(entry, "...") {
			continue // a shape, not an example
		}
		n++
		s, err := validate(t, `{"urls": [`+entry+`]}`)
		if err != nil {
			t.Errorf("README entry %s: %v", entry, err)
			continue
		}
		if len(s.PerURL) != 1 || s.PerURL[0] == nil || len(s.PerURL[0].Headers) == 0 {
			t.Errorf("README entry %s: no headers of its own (%+v)", entry, s.PerURL)
		}
	}
	if n == 0 {
		t.Fatal("no complete {\"url\": ...} entry in the README")
	}
}
