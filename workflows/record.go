package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// record ends a chunk that will not be hashed: every URL keeps its
// fetch's final word, and a fetched body left unhashed fails with
// outcome and msg. A staged chunk's results go to the blob store (one
// small activity, so nothing about its URLs stays in the workflow).
func (e *engine) record(ctx workflow.Context, ch chunk, items []activities.Fetched, outcome, msg string) {
	if e.staged {
		// Recorded even when the batch is being canceled or stopped: the
		// URLs' words are true either way.
		bg, _ := workflow.NewDisconnectedContext(ctx)
		var f *activities.Fetcher
		if err := workflow.ExecuteActivity(housekeeping(bg, 5*time.Minute, 5, fmt.Sprintf("record results of URLs %d to %d", ch.first+1, ch.first+ch.n)),
			f.RecordChunkFailure, activities.ChunkFailure{
				Prefix: e.prefix, Chunk: ch.index, First: ch.base, Items: ownWords(items, outcome, msg), Outcome: outcome, Error: msg,
				From: ch.from(), N: ch.n,
			}).Get(bg, nil); err != nil {
			// The chunk's URLs still get their error, from the workflow:
			// at most one record per chunk.
			workflow.GetLogger(ctx).Error("recording a chunk's results failed", "chunk", ch.index, "error", err)
			if msg == "" {
				msg = "its results could not be recorded: " + PlainMessage(cause(err))
			}
			if outcome == "" {
				outcome = OutcomeError
			}
			e.unrecorded = append(e.unrecorded, activities.FailedChunks{From: ch.index, To: ch.index + 1, Outcome: outcome, Error: activities.TruncateError(msg)})
		}
	} else {
		for _, it := range items {
			r := it.Final()
			if it.Outcome == "" {
				r.Outcome, r.Error = outcome, msg
			}
			e.results[it.Index] = r
		}
	}
	var first *activities.Fetched
	for i := range items {
		if first == nil && items[i].Outcome != OutcomeCanceled {
			first = &items[i]
		}
	}
	e.count(ch.n, 0) // no body was hashed: none is ok
	if e.s.FailFast && first != nil {
		r := first.Final()
		if first.Outcome == "" {
			r.Outcome, r.Error = outcome, msg
		}
		e.stop(r, first.Index)
	}
}

// hasFinal tells whether any item has a final word other than canceled.
func hasFinal(items []activities.Fetched) bool {
	for _, it := range items {
		if it.Outcome != "" && it.Outcome != OutcomeCanceled {
			return true
		}
	}
	return false
}

// ownWords keeps the items of a staged chunk that say more than the
// chunk's own outcome and msg, without their URLs (the activity reads them
// from the chunk's file), so the payload stays small.
func ownWords(items []activities.Fetched, outcome, msg string) []activities.Fetched {
	var out []activities.Fetched
	for _, it := range items {
		if it.Outcome != "" && it.Outcome == outcome && it.Error == msg {
			continue
		}
		it.URL = ""
		out = append(out, it)
	}
	return out
}

// finishEarly records a chunk that ends without hashing: items that got
// no further than their fetch are canceled. A staged chunk's results are
// in the blob store already (its activity wrote them when canceled), but
// for the URL that stopped a fail_fast batch.
func (e *engine) finishEarly(ch chunk, items []activities.Fetched) {
	for _, it := range items {
		if it.Outcome == "" {
			it.Outcome, it.Error = OutcomeCanceled, "canceled before hashing"
		}
		r := it.Final()
		if e.staged {
			if e.failure != nil && it.Index == e.failureAt && len(e.known) == 0 {
				e.known = append(e.known, activities.IndexedResult{Index: it.Index, Result: r})
			}
		} else {
			e.results[it.Index] = r
		}
	}
	e.count(len(items), 0)
}

// failedItems describes a chunk whose fetch activity ended with an error
// and no word on its URLs.
func (e *engine) failedItems(ch chunk, outcome, msg string) []activities.Fetched {
	items := make([]activities.Fetched, ch.n)
	for i := range items {
		items[i] = activities.Fetched{Index: ch.first + i, Outcome: outcome, Error: msg}
		if ch.urls != nil {
			items[i].URL = ch.urls[i].URL
		}
	}
	// A staged chunk's URLs are in its file, not here: the results file
	// fills them in.
	return items
}
