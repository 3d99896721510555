package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// chunk is a run of consecutive URLs fetched by one activity.
type chunk struct {
	index int // chunk number in the batch
	first int // index of its first URL
	n     int
	urls  []activities.URLTask // inline batches only
	// base is the first URL of the whole chunk, and piece numbers the
	// parts it was fetched in (0 for the first), when an earlier fetch
	// handed its first URLs to the hash step on their own.
	base, piece int
}

// from is where a part of a chunk starts, as requests say it: 0 for the
// first part.
func (ch chunk) from() int {
	if ch.piece == 0 {
		return 0
	}
	return ch.first
}

// id names a chunk's activities: "fetch-3", or "fetch-3.2" for its part 2.
func (ch chunk) id(verb string) string {
	if ch.piece == 0 {
		return fmt.Sprintf("%s-%d", verb, ch.index)
	}
	return fmt.Sprintf("%s-%d.%d", verb, ch.index, ch.piece)
}

// split cuts a chunk after its first n URLs: the part fetched, and the
// rest, left to another fetch.
func (ch chunk) split(n int) (part, rest chunk) {
	part, rest = ch, ch
	part.n = n
	rest.first, rest.n, rest.piece = ch.first+n, ch.n-n, ch.piece+1
	if ch.urls != nil {
		part.urls, rest.urls = ch.urls[:n], ch.urls[n:]
	}
	return part, rest
}

// startRest fetches the rest of a chunk whose fetch handed its first URLs
// to the hash step, as a chunk of its own: once it has fetch slots and
// the backlog has room, as for any chunk.
func (e *engine) startRest(ctx workflow.Context, rest chunk, w int) {
	w = min(w, rest.n)
	e.running++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { e.running-- }()
		err := workflow.Await(ctx, func() bool {
			return e.stopping || (e.slots+w <= e.s.MaxInFlight && e.scratch.room(e.running))
		})
		if err != nil || e.stopping {
			// The batch stopped first: these URLs never started (a staged
			// chunk's read as canceled in its results).
			e.finishEarly(rest, e.failedItems(rest, OutcomeCanceled, "canceled"))
			return
		}
		e.slots += w
		e.progress.InFlight += w
		e.runChunk(ctx, rest, w)
	})
}
