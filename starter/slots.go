package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/internal/workers"
)

// slotWarning says once that the batch cannot have the fetches at once
// it asks for, from whichever source tells first: the fetch workers
// polling its task queue, or the progress query (the workers that ran its
// fetches). slots is the pollers' fetch slots in all, once known (0: not
// known): the progress line shows no more in flight.
type slotWarning struct {
	once  sync.Once
	w     io.Writer
	slots atomic.Int64
}

// inFlight is what the progress line says is in flight: the query's word,
// at most the polling workers' slots.
func (s *slotWarning) inFlight(n int) int {
	if known := int(s.slots.Load()); known > 0 {
		return min(n, known)
	}
	return n
}

func (s *slotWarning) say(msg string) {
	s.once.Do(func() { fmt.Fprintf(s.w, "\nstarter: %s\n", msg) })
}

// pollerFresh is how recently a poller must have polled to count: a
// worker long-polls about once a minute, and one that stopped stays in
// the list for minutes.
const pollerFresh = 2 * time.Minute

// fetchSlots adds up the fetch slots of the workers polling queue for
// fetches. polling is how many poll; unknown how many of them do not say
// their slots (earlier releases, other programs).
func fetchSlots(ctx context.Context, c client.Client, queue string) (slots, polling, unknown int, err error) {
	d, err := c.DescribeTaskQueue(ctx, queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return 0, 0, 0, err
	}
	seen := map[string]bool{}
	for _, p := range d.GetPollers() {
		id := p.GetIdentity()
		if seen[id] || time.Since(p.GetLastAccessTime().AsTime()) > pollerFresh {
			continue
		}
		seen[id] = true
		polling++
		if n, ok := workers.FetchSlotsOf(id); ok {
			slots += n
		} else {
			unknown++
		}
	}
	return slots, polling, unknown, nil
}

// checkSlots warns when the fetch workers polling the batch's task queue
// have fewer fetch slots in all than its max_in_flight. It returns false
// when it cannot tell yet (no worker polls, or the server did not say).
func checkSlots(ctx context.Context, c client.Client, o *options, warn *slotWarning) bool {
	slots, polling, unknown, err := fetchSlots(ctx, c, o.taskQueue)
	if err != nil || polling == 0 {
		return false
	}
	if unknown > 0 {
		return true // some do not say: the progress query may
	}
	warn.slots.Store(int64(slots))
	if slots < o.input.MaxInFlight {
		warn.say(fmt.Sprintf("the %d fetch worker(s) polling task queue %q have %d fetch slots in all, fewer than this batch's max_in_flight %d: "+
			"at most %d of its fetches run at once (start them with a larger --fetch-slots, or start more of them)",
			polling, o.taskQueue, slots, o.input.MaxInFlight, slots))
	}
	return true
}
