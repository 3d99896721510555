package main

import "testing"

// Errors that differ only in their URL, path or numbers count as one kind.
func TestErrorShapes(t *testing.T) {
	var e errorCounts
	e.add("error: storing body: write /tmp/x/batches/01a2/bodies/0f/.000000015.96751f4a29a2073f.partial: no space left on device")
	e.add("error: storing body: write /tmp/x/batches/01a2/bodies/10/.000000016.96ba77f268d0561c.partial: no space left on device")
	e.add(`timeout: Get "http://127.0.1.3:4567/slow/a/12": context deadline exceeded`)
	e.add(`timeout: Get "http://127.0.1.4:4567/slow/a/13": context deadline exceeded`)
	want := `2 x "error: storing body: write …: no space left on device"; 2 x "timeout: Get \"…\": context deadline exceeded"`
	if got := e.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
