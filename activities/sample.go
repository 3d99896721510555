package activities

import "unicode/utf8"

// FailureSample is how many failed URLs a batch's output lists, even when
// its results are in a file.
const FailureSample = 20

// sampleText bounds a sampled failure's URL and error.
const sampleText = 512

// SampleOf is r as a batch's sample of failures lists it (its URL, outcome,
// status, attempts and error, clipped), and whether r is a failure to
// list: not ok, and not canceled.
func SampleOf(r Result) (Result, bool) {
	if r.Outcome == "" || Succeeded(r.Outcome) || r.Outcome == OutcomeCanceled {
		return Result{}, false
	}
	return Result{URL: Clip(r.URL, sampleText), Outcome: r.Outcome, Status: r.Status, Attempts: r.Attempts, Error: Clip(r.Error, sampleText)}, true
}

// Clip cuts s to at most n bytes, on a character's boundary, ending in
// " …" when it cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := max(0, n-len(" …"))
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + " …"
}
