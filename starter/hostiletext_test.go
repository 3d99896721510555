package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/batchfetch/batchfetch/workflows"
)

// hostile is a reason phrase a server may send (Go's HTTP client takes
// any byte but a line end in it): it sets the terminal's title, clears
// the screen, moves the cursor back over the line and uses the 8-bit CSI
// and a right-to-left override.
const hostile = "HTTP 503 \x1b]0;owned\x07\x1b[2Jfine\rok\x9b1m\u202edcba\b"

// controls says whether s holds anything a terminal acts on rather than
// shows (a line end apart).
func controls(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 && r != '\n' || r >= 0x7f && r < 0xa0 || r == '\u202e' || r == '\ufffd'
	})
}

// A result's error from a hostile server reaches the table shown, not
// acted on by the terminal.
func TestAHostileReasonPhraseIsShownInTheTableNotActedOn(t *testing.T) {
	out := workflows.Output{Results: []workflows.Result{
		{URL: "http://127.0.0.1/a", Outcome: workflows.OutcomeHTTPError, Status: 503, Attempts: 3, Error: hostile},
		{URL: "http://127.0.0.1/b", Outcome: workflows.OutcomeNotModified, Status: 304, Attempts: 1,
			Processed: []byte(`{"title":"x","links":[],"not_html":"image/\u001b[2Jpng"}`)},
	}, Failed: 1, Total: 2}
	var b bytes.Buffer
	if err := printOutput(context.Background(), &b, out, options{}); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if controls(line) {
			t.Errorf("a line acted on by the terminal: %q", line)
		}
	}
	if !strings.Contains(b.String(), `HTTP 503 \x1b]0;owned\a\x1b[2Jfine ok\x9b1m\u202edcba\b`) {
		t.Errorf("the table does not show the reason phrase as it was sent:\n%s", b.String())
	}
}

// The last failure of an activity retried often, drawn under the bar,
// is shown and not acted on.
func TestAHostileLastFailureUnderTheBarIsShownNotActedOn(t *testing.T) {
	rw := &retryWatch{fetchQueue: "f", cpuQueue: "c", parts: map[string]retriedActivity{}}
	a, ok := rw.worstOf([]*workflowpb.PendingActivityInfo{{
		ActivityType: &commonpb.ActivityType{Name: "FetchURL"},
		Attempt:      5,
		LastFailure:  &failurepb.Failure{Message: hostile + "\nsecond line"},
	}})
	if !ok {
		t.Fatal("no retried activity found")
	}
	text, key := a.note()
	var b bytes.Buffer
	s := &screen{w: &b, tty: true, width: 400, said: map[string]bool{}}
	s.setBar("[....] 0/1")
	s.setNote(noteRetrying, text, key)
	drawn := strings.ReplaceAll(strings.ReplaceAll(b.String(), "\r\033[K", ""), "\033[1A", "")
	if controls(strings.ReplaceAll(drawn, "\n", " ")) || strings.Count(drawn, "\n") != 1 {
		t.Errorf("drawn: %q", b.String())
	}
	if !strings.Contains(text, `fine ok\x9b1m`) || !strings.Contains(text, "dcba\\b second line") {
		t.Errorf("note: %q", text)
	}
}

// A note in a script of wide characters (a reason phrase in Chinese)
// fits the terminal's width in columns: a line that wrapped would leave
// its second half on the screen at each redraw.
func TestAWideNoteFitsTheTerminal(t *testing.T) {
	var b bytes.Buffer
	s := &screen{w: &b, tty: true, width: 20, said: map[string]bool{}}
	s.setBar("[....] 0/1")
	s.setNote(noteRetrying, "HTTP 503 服务暂时不可用请稍后再试", "k")
	drawn := b.String()
	note := drawn[strings.LastIndex(drawn, "\n")+1:]
	if got, want := note, "HTTP 503 服务暂时…"; got != want {
		t.Errorf("the note drawn is %q, want %q (19 columns)", got, want)
	}
}
