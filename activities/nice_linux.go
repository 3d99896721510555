package activities

import (
	"runtime"
	"syscall"
)

// niced runs f on an OS thread of its own whose niceness is at least
// nice, so that hashing yields the processor to latency-sensitive threads
// (fetches, and other processes in the same cgroup) on the same machine.
// Linux threads have their own niceness; the Go runtime starts new
// threads from a locked thread's neutral template, so the niceness stays
// with this one. An unprivileged thread cannot lower its niceness again:
// the goroutine never unlocks the thread, and the runtime ends the thread
// with it. The main thread is never ended (the runtime parks it), so f
// runs there at the process's niceness.
func niced(nice int, f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		runtime.LockOSThread()
		if tid := syscall.Gettid(); tid != syscall.Getpid() {
			// The kernel's getpriority answers 20 - niceness.
			if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid); err == nil && 20-prio < nice {
				_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice) // best effort
			}
		}
		f()
	}()
	if p := <-done; p != nil {
		panic(p) // in the activity's goroutine, where the SDK recovers it
	}
}
