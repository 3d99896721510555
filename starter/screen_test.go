package main

import (
	"bytes"
	"strings"
	"testing"
)

// On a terminal the note is drawn under the bar and both are redrawn in
// place; a note cleared leaves the bar alone, and the end leaves no note.
func TestTheNoteIsRedrawnUnderTheBar(t *testing.T) {
	var b bytes.Buffer
	s := &screen{w: &b, tty: true, width: 40, said: map[string]bool{}}
	s.setBar("[....] 0/10")
	s.setNote(noteRetrying, "cpu HashChunk attempt 3 failed: refused", "k")
	s.setBar("[#...] 1/10")
	s.setNote(noteUnreachable, "Temporal server at 127.0.0.1:1 unreachable for 5s, still waiting", "u")
	s.setNote(noteUnreachable, "", "")
	s.setNote(noteRetrying, "", "")
	const up = "\r\033[K\033[1A\r\033[K" // clears the note's line and the bar's
	want := "[....] 0/10" +
		"\r\033[K" + "[....] 0/10\ncpu HashChunk attempt 3 failed: refused" +
		up + "[#...] 1/10\ncpu HashChunk attempt 3 failed: refused" +
		up + "[#...] 1/10\nTemporal server at 127.0.0.1:1 unreach…" +
		up + "[#...] 1/10\ncpu HashChunk attempt 3 failed: refused" +
		up + "[#...] 1/10"
	if got := b.String(); got != want {
		t.Errorf("drawn:\n%q\nwant:\n%q", got, want)
	}
	b.Reset()
	s.setNote(noteRetrying, "again", "k")
	s.Write([]byte("\nstarter: a warning\n"))
	s.end()
	want = "\r\033[K[#...] 1/10\nagain" + up + "starter: a warning\n" + "[#...] 1/10\nagain" + up + "[#...] 1/10\n"
	if got := b.String(); got != want {
		t.Errorf("a warning, then the end:\n%q\nwant:\n%q", got, want)
	}
}

// Off a terminal every new bar is a line, and a note is said once for
// its key: a new attempt of the same failure is no news.
func TestNotesOffATerminalAreSaidOnce(t *testing.T) {
	var b bytes.Buffer
	s := &screen{w: &b, said: map[string]bool{}}
	s.setBar("[....] 0/10")
	s.setBar("[....] 0/10")
	s.setNote(noteRetrying, "cpu HashChunk attempt 3 failed: refused", "cpu HashChunk: refused")
	s.setNote(noteRetrying, "cpu HashChunk attempt 4 failed: refused", "cpu HashChunk: refused")
	s.setNote(noteRetrying, "", "")
	s.setNote(noteRetrying, "fetch FetchChunk attempt 3 failed: reset", "fetch FetchChunk: reset")
	s.end()
	want := "[....] 0/10\nstarter: cpu HashChunk attempt 3 failed: refused\nstarter: fetch FetchChunk attempt 3 failed: reset\n"
	if got := b.String(); got != want {
		t.Errorf("printed:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(b.String(), "\033") {
		t.Error("escape sequences off a terminal")
	}
}
