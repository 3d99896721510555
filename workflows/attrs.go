package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
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
	// check is a fetch worker's answer to whether the namespace has
	// them, until it has come.
	check   workflow.Future
	on      bool
	started time.Time
	last    time.Time
	sent    [3]int64
}

// newCountAttrs asks a fetch worker whether the namespace has the
// attributes, without waiting: the batch starts its fetches meanwhile.
// An activity and not a local one, so that its answer is in the history:
// a workflow worker that cannot answer (a pipeline's own, an older one)
// replays what another answered. Any doubt (no answer within a minute, a
// worker without the check) leaves them off: a batch never fails for
// want of them.
func newCountAttrs(ctx workflow.Context) *countAttrs {
	a := &countAttrs{started: workflow.Now(ctx)}
	if workflow.GetVersion(ctx, "count-search-attributes", workflow.DefaultVersion, 1) != 1 {
		return a
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ScheduleToCloseTimeout: time.Minute,
		StartToCloseTimeout:    10 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 2},
		Summary:                "check the namespace's search attributes",
	})
	a.check = workflow.ExecuteActivity(actx, activities.SearchAttributesActivity)
	return a
}

// answered takes the check's answer once it has come (at the end, waits
// for it), and tells whether the counts go to the attributes.
func (a *countAttrs) answered(ctx workflow.Context, final bool) bool {
	if a.check == nil {
		return a.on
	}
	if !final && !a.check.IsReady() {
		return false
	}
	var names []string
	err := a.check.Get(ctx, &names)
	a.check = nil
	if err != nil {
		workflow.GetLogger(ctx).Info("the counts' search attributes are off: no fetch worker could check them", "error", err)
		return false
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	a.on = have[AttrOK] && have[AttrFailed] && have[AttrTotal]
	if !a.on {
		workflow.GetLogger(ctx).Info("the counts' search attributes are not registered in this namespace: the batch runs without them", "registered", names)
	}
	return a.on
}

// update sends p's counts, when they changed and the interval has passed
// (always, when final).
func (a *countAttrs) update(ctx workflow.Context, p Progress, final bool) {
	if a == nil || !a.answered(ctx, final) {
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
