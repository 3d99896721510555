package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeat records details() every interval until stop is called (once
// or more). A
// heartbeat is also how a cancel request reaches a running activity (its
// ctx is canceled).
func heartbeat(ctx context.Context, every time.Duration, details func() any) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				// Not with ctx itself: a heartbeat encoded just as ctx is
				// canceled (the worker stopping) fails to encode, and the
				// SDK then fails the attempt with "context canceled",
				// dropping what the activity returns.
				activity.RecordHeartbeat(context.WithoutCancel(ctx), details())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

// summarize says in a line where a chunk is: "37/100 done; retrying
// https://… (HTTP 503), attempt 2/3 in 2s".
func summarize(done, total int, running map[int]inFlight, tasks []URLTask, pos map[int]int, p Policy) string {
	s := fmt.Sprintf("%d/%d done", done, total)
	waiting := -1
	for idx, r := range running {
		if r.RetryAt != 0 && (waiting < 0 || idx < waiting) {
			waiting = idx
		}
	}
	if waiting >= 0 {
		r := running[waiting]
		in := time.Until(time.UnixMilli(r.RetryAt)).Round(time.Second)
		s += fmt.Sprintf("; %d running; retrying %s (%s), attempt %d/%d in %s", len(running), Redact(tasks[pos[waiting]].URL), r.Last, r.Attempts+1, max(p.MaxAttempts, 1), max(in, 0))
	} else if len(running) > 0 {
		s += fmt.Sprintf("; %d running", len(running))
	}
	return s
}
