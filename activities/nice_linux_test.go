package activities

import (
	"os"
	"runtime"
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

// The hashing thread runs at the niceness asked for (never less nice than
// it was); the threads the process starts while it runs, and after, keep
// the process's.
func TestNicedRunsOnANicedThread(t *testing.T) {
	base := threadNice(t)
	want := max(base, 7)
	var inside int
	others := make(chan int, 16)
	niced(7, func() {
		inside = threadNice(t)
		// New threads, started while a niced thread is locked.
		for range 16 {
			go func() {
				runtime.LockOSThread()
				others <- threadNice(t)
			}()
		}
		for range 16 {
			if n := <-others; n != base {
				t.Errorf("a thread started meanwhile has niceness %d, the process %d", n, base)
			}
		}
	})
	if inside != want && inside != base { // base: the main thread, never niced
		t.Errorf("niceness inside: %d, want %d", inside, want)
	}
	if threadNice(t) != base {
		t.Errorf("the caller's thread has niceness %d, was %d", threadNice(t), base)
	}
	defer func() {
		if recover() == nil {
			t.Error("a panic inside did not reach the caller")
		}
	}()
	niced(7, func() { panic("boom") })
}
