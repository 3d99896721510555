package activities

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// threadNice reads the calling thread's niceness from /proc.
func threadNice(t *testing.T) int {
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	n, err := strconv.Atoi(f[16]) // field 19 of stat: nice
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The hashing thread runs at the niceness asked for; the caller's thread,
// and the threads the process starts after, do not.
func TestNicedRunsOnANicedThread(t *testing.T) {
	var inside int
	niced(7, func() { inside = threadNice(t) })
	if inside != 7 {
		t.Errorf("niceness inside: %d, want 7", inside)
	}
	done := make(chan int)
	for range 8 {
		go func() { done <- threadNice(t) }()
	}
	for range 8 {
		if n := <-done; n != 0 {
			t.Errorf("a thread outside has niceness %d", n)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("a panic inside did not reach the caller")
		}
	}()
	niced(7, func() { panic("boom") })
}
