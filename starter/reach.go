package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unreachable tells whether err says the Temporal server did not answer,
// rather than what it answered.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	if errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	code := status.Code(err)
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// reachability follows whether the Temporal server answers the starter's
// calls while it waits. The batch is durable: the starter waits on.
type reachability struct {
	mu    sync.Mutex
	addr  string
	since time.Time // when the first unanswered call began; zero: answering
}

// answered notes how a call begun at began went (any answer, an error
// too, says the server is there). back is how long the server had not
// answered, when this call is the first it answered since.
func (r *reachability) answered(began time.Time, err error) (back time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !unreachable(err) && !r.since.IsZero():
		back = time.Since(r.since)
		r.since = time.Time{}
	case unreachable(err) && r.since.IsZero():
		r.since = began
	}
	return back
}

// note is the line that says the server does not answer ("" when it
// does), and its key: a new one every 30s off a terminal.
func (r *reachability) note(now time.Time) (text, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.since.IsZero() {
		return "", ""
	}
	down := now.Sub(r.since).Truncate(time.Second)
	text = fmt.Sprintf("Temporal server at %s unreachable for %s, still waiting", r.addr, down)
	return text, fmt.Sprintf("unreachable %d %d", r.since.UnixNano(), int(down/(30*time.Second)))
}

// backLine says the server answers again after down.
func (r *reachability) backLine(down time.Duration) string {
	return fmt.Sprintf("starter: Temporal server at %s answers again, after %s\n", r.addr, down.Truncate(time.Second))
}
