package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// scratch keeps a batch's scratch space (bodies between their fetch and
// their hash) bounded by the work in flight: a chunk's work directory is
// removed (RemoveWork) as soon as its hash is recorded, and no fetch
// starts while the bodies fetched and not yet hashed come to the fetch
// workers' backlog bound. Batches started before this version keep every
// body until they end.
type scratch struct {
	on       bool
	backlog  int64 // bytes fetched, their hash not yet recorded
	limit    int64 // the bound, as the fetch workers last said
	released []int // chunks done (by first URL) whose bodies may go
	removing bool  // a RemoveWork activity is running
	progress *Progress
}

func newScratch(ctx workflow.Context, progress *Progress) scratch {
	on := workflow.GetVersion(ctx, "bounded-scratch", workflow.DefaultVersion, 1) == 1
	return scratch{on: on, limit: activities.DefaultBacklog, progress: progress}
}

// room tells whether another chunk may start fetching: always when none
// runs (the backlog is then empty), else while the backlog is under the
// bound.
func (s *scratch) room(running int) bool {
	return !s.on || running == 0 || s.backlog < s.limit
}

// fetched counts a chunk's fetched bodies in the backlog until the
// returned func runs, when the chunk has ended (hashed, recorded or
// stopped): its bytes leave the backlog and its work directory is
// released.
func (s *scratch) fetched(ch chunk, f activities.FetchChunkResult) (done func()) {
	if !s.on {
		return func() {}
	}
	var n int64
	for _, it := range f.Items {
		if it.Outcome == "" && !it.NotModified {
			n += it.Size
		}
	}
	if f.Backlog > 0 {
		s.limit = f.Backlog
	}
	s.add(n)
	return func() {
		s.add(-n)
		s.released = append(s.released, ch.first)
	}
}

func (s *scratch) add(n int64) {
	s.backlog += n
	s.progress.BacklogBytes = s.backlog
}

// budget is what a chunk's fetch may hold before it hands its bodies to
// the hash step (FetchChunkRequest.Budget): a quarter of the backlog
// bound, so several chunks share it. A run whose history has grown long
// (a batch of bodies each near the budget makes two activities a body)
// fetches its chunks whole from there on.
func (s *scratch) budget(ctx workflow.Context) int64 {
	if !s.on || workflow.GetInfo(ctx).GetCurrentHistoryLength() > maxSplitHistory {
		return 0
	}
	return max(s.limit/4, 1)
}

// maxSplitHistory is the history length past which a run stops splitting
// chunks (Temporal warns at 10,240 events).
const maxSplitHistory = 6000

// remove removes released work directories as they come, one activity at
// a time (each takes every directory released meanwhile), until ctx ends.
func (s *scratch) remove(ctx workflow.Context, prefix string) {
	if !s.on {
		return
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		var f *activities.Fetcher
		for {
			if workflow.Await(ctx, func() bool { return len(s.released) > 0 }) != nil {
				return
			}
			firsts := s.released
			s.released = nil
			s.removing = true
			summary := fmt.Sprintf("remove the hashed bodies of %d chunks", len(firsts))
			if len(firsts) == 1 {
				summary = fmt.Sprintf("remove the hashed bodies from URL %d", firsts[0]+1)
			}
			err := workflow.ExecuteActivity(housekeeping(ctx, 5*time.Minute, 10, summary), f.RemoveWork,
				activities.RemoveWorkRequest{Prefix: prefix, Firsts: firsts}).Get(ctx, nil)
			s.removing = false
			if err != nil && ctx.Err() == nil {
				// The batch's cleanup removes them when it ends.
				workflow.GetLogger(ctx).Warn("removing hashed bodies failed", "error", err)
			}
		}
	})
}

// drain waits until every released directory is removed, so a part
// leaves none of its chunks' bodies behind it.
func (s *scratch) drain(ctx workflow.Context) {
	if s.on {
		_ = workflow.Await(ctx, func() bool { return len(s.released) == 0 && !s.removing })
	}
}
