package main

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The teardowns still to run: what the bench started that must not
// outlive it (worker processes, mounts, the stack). On SIGINT or SIGTERM
// they run, the latest first, and the bench exits.
var teardowns struct {
	mu   sync.Mutex
	next int
	fns  map[int]func()
}

// atExit registers f to run if the bench is interrupted, and returns a
// function that runs f now (once) and drops it from the list.
func atExit(f func()) func() {
	teardowns.mu.Lock()
	defer teardowns.mu.Unlock()
	if teardowns.fns == nil {
		teardowns.fns = map[int]func(){}
	}
	id := teardowns.next
	teardowns.next++
	teardowns.fns[id] = f
	var once sync.Once
	return func() {
		once.Do(func() {
			teardowns.mu.Lock()
			delete(teardowns.fns, id)
			teardowns.mu.Unlock()
			f()
		})
	}
}

// tearDownOnSignal runs every registered teardown on SIGINT or SIGTERM,
// then exits 130.
func tearDownOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-ch
		fmt.Fprintf(os.Stderr, "bench: %v: stopping what it started\n", sig)
		teardowns.mu.Lock()
		for id := teardowns.next - 1; id >= 0; id-- {
			if f := teardowns.fns[id]; f != nil {
				f()
			}
		}
		os.Exit(130)
	}()
}
