package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/term"
	"golang.org/x/text/width"
)

// Notes under the progress bar, most urgent first: only the first one set
// is shown.
const (
	noteUnreachable = iota // the Temporal server does not answer
	noteRetrying           // an activity keeps failing
	noteCount
)

// screen is stderr while the starter waits: the progress bar and, under
// it, one note, both redrawn in place on a terminal. Anywhere else each
// new bar is a line of its own and each new note is printed once.
// Whatever else is said meanwhile goes through Write, above the bar.
type screen struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	width int

	bar   string
	notes [noteCount]string
	// shown is what is on the terminal: the bar's line and, when
	// noteShown, a note's line under it, the cursor at its end.
	shown, noteShown bool
	said             map[string]bool // not a terminal: the notes printed
}

func newScreen(w io.Writer) *screen {
	s := &screen{w: w, tty: isTerminal(w), width: 80, said: map[string]bool{}}
	if f, ok := w.(*os.File); ok && s.tty {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 1 {
			s.width = cols
		}
	}
	return s
}

// setBar shows the progress bar.
func (s *screen) setBar(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if line == s.bar {
		return
	}
	s.bar = line
	if s.tty {
		s.redraw()
		return
	}
	io.WriteString(s.w, line+"\n")
}

// setNote shows text in note slot (empty text clears it). Off a
// terminal the text is printed unless a note of the same key was: key
// leaves out what changes without news (an attempt number, seconds).
func (s *screen) setNote(slot int, text, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notes[slot] == text {
		return
	}
	s.notes[slot] = text
	if s.tty {
		s.redraw()
		return
	}
	if text != "" && !s.said[key] {
		s.said[key] = true
		io.WriteString(s.w, "starter: "+text+"\n")
	}
}

// Write says p for good: above the bar on a terminal (a newline that
// only ended the bar's line is left out), as it is elsewhere.
func (s *screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tty || !s.shown {
		return s.w.Write(p)
	}
	s.erase()
	if _, err := io.WriteString(s.w, strings.TrimLeft(string(p), "\n")); err != nil {
		return 0, err
	}
	s.redraw()
	return len(p), nil
}

// end leaves the bar on the terminal, without its note, and what follows
// on a line of its own.
func (s *screen) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.tty || !s.shown {
		return
	}
	s.notes = [noteCount]string{}
	s.redraw()
	io.WriteString(s.w, "\n")
	s.shown = false
}

// redraw puts the bar and the first note on the terminal, in place of
// what was there.
func (s *screen) redraw() {
	s.erase()
	var b strings.Builder
	b.WriteString(clipColumns(s.bar, s.width-1))
	s.noteShown = false
	for _, n := range s.notes {
		if n != "" {
			b.WriteString("\n" + clipColumns(n, s.width-1))
			s.noteShown = true
			break
		}
	}
	io.WriteString(s.w, b.String())
	s.shown = true
}

// erase clears the lines redraw drew and leaves the cursor at the start
// of the bar's.
func (s *screen) erase() {
	if !s.shown {
		return
	}
	if s.noteShown {
		io.WriteString(s.w, "\r\033[K\033[1A")
	}
	io.WriteString(s.w, "\r\033[K")
	s.shown, s.noteShown = false, false
}

// clipColumns shortens s to n columns of a terminal, marking the cut: a
// wide character (Chinese, Japanese, Korean) takes two. A line longer
// than the terminal would wrap, and erase clears one line only.
func clipColumns(s string, n int) string {
	cols, cut := 0, 0 // cut: where s ends with room for the mark
	for i, r := range s {
		if cols+columns(r) > n {
			return s[:cut] + "…"
		}
		if cols += columns(r); cols <= n-1 {
			cut = i + utf8.RuneLen(r)
		}
	}
	return s
}

func columns(r rune) int {
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}
