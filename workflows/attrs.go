package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Search attributes a batch keeps its counts in, so the Web UI's list of
// workflows shows them and a query such as `BatchFetchFailed > 0` finds
// the batches that had failures. A namespace must have them registered
// (Int); a batch in one that has not runs without them.
const (
	AttrOK     = "BatchFetchOK"
	AttrFailed = "BatchFetchFailed"
	AttrTotal  = "BatchFetchTotal"
)

// SearchAttributes are the batch's search attributes and their types (all
// Int), for registering them.
var SearchAttributes = []string{AttrOK, AttrFailed, AttrTotal}

// SearchAttributesActivity is the local activity a fetch worker answers
// with the names of SearchAttributes its namespace has registered as Int.
const SearchAttributesActivity = "BatchFetchSearchAttributes"

var (
	keyOK     = temporal.NewSearchAttributeKeyInt64(AttrOK)
	keyFailed = temporal.NewSearchAttributeKeyInt64(AttrFailed)
	keyTotal  = temporal.NewSearchAttributeKeyInt64(AttrTotal)
)

// countAttrs keeps a batch's counts in its search attributes, when its
// namespace has them: at most one upsert per interval (5 s at first, up
// to a minute for long batches), and the final counts at the end. An
// upsert costs one history event: about 100 for an hour's batch, about
// 1,500 for a day's, whatever its size.
type countAttrs struct {
	on      bool
	started time.Time
	last    time.Time
	sent    [3]int64
}

// newCountAttrs asks a fetch worker whether the namespace has the
// attributes. Any doubt (an older worker, a server that does not say)
// leaves them off: a batch never fails for want of them.
func newCountAttrs(ctx workflow.Context) *countAttrs {
	a := &countAttrs{started: workflow.Now(ctx)}
	if workflow.GetVersion(ctx, "count-search-attributes", workflow.DefaultVersion, 1) != 1 {
		return a
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
		Summary:             "check the namespace's search attributes",
	})
	var names []string
	if err := workflow.ExecuteLocalActivity(lctx, SearchAttributesActivity).Get(ctx, &names); err != nil {
		workflow.GetLogger(ctx).Info("the counts' search attributes are off: no fetch worker could check them", "error", err)
		return a
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	a.on = have[AttrOK] && have[AttrFailed] && have[AttrTotal]
	if !a.on {
		workflow.GetLogger(ctx).Info("the counts' search attributes are not registered in this namespace: the batch runs without them", "registered", names)
	}
	return a
}

// update sends p's counts, when they changed and the interval has passed
// (always, when final).
func (a *countAttrs) update(ctx workflow.Context, p Progress, final bool) {
	if a == nil || !a.on {
		return
	}
	now := workflow.Now(ctx)
	counts := [3]int64{int64(p.OK), int64(p.Failed), int64(p.Total)}
	if counts == a.sent || (!final && now.Sub(a.last) < a.interval(now)) {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		keyOK.ValueSet(counts[0]), keyFailed.ValueSet(counts[1]), keyTotal.ValueSet(counts[2])); err != nil {
		workflow.GetLogger(ctx).Warn("updating the counts' search attributes failed", "error", err)
		return
	}
	a.sent, a.last = counts, now
}

// interval is a tenth of the batch's age, from 5 s to a minute.
func (a *countAttrs) interval(now time.Time) time.Duration {
	return min(time.Minute, max(5*time.Second, now.Sub(a.started)/10))
}
