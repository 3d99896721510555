package main

import (
	"bytes"
	"strings"
	"sync"
)

// tail keeps the first 4 KiB and the last 8 KiB written to it: where a
// process said what it was doing, and what it said last.
type tail struct {
	mu         sync.Mutex
	head, buf  []byte
	dropped    bool
	headClosed bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if !t.headClosed {
		k := min(len(p), 4<<10-len(t.head))
		t.head = append(t.head, p[:k]...)
		p = p[k:]
		t.headClosed = len(t.head) == 4<<10
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8<<10 {
		cut := t.buf[len(t.buf)-8<<10:]
		if i := bytes.IndexByte(cut, '\n'); i >= 0 {
			cut = cut[i+1:] // from the start of a line
		}
		t.buf = append([]byte(nil), cut...)
		t.dropped = true
	}
	return n, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped {
		return string(t.head) + "\n…\n" + string(t.buf)
	}
	return string(t.head) + string(t.buf)
}

// indent indents each line of s.
func indent(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if line != "" {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String()
}
