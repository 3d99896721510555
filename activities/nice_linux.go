package activities

import (
	"runtime"
	"syscall"
)

// niced runs f on an OS thread of its own whose niceness is nice, so that
// hashing yields the processor to latency-sensitive threads (fetches, a
// Temporal server, other processes) on the same machine. Linux threads
// have their own niceness; the Go runtime starts new threads from a
// locked thread's neutral template, so the niceness stays with this one.
// An unprivileged thread cannot lower its niceness again: the goroutine
// never unlocks the thread, and the runtime ends the thread with it.
func niced(nice int, f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		runtime.LockOSThread()
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), nice) // best effort
		f()
	}()
	if p := <-done; p != nil {
		panic(p) // in the activity's goroutine, where the SDK recovers it
	}
}
