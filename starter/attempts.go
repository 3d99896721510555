package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/proto"

	bfclient "github.com/batchfetch/batchfetch/client"
	"github.com/batchfetch/batchfetch/workflows"
)

// retriedOften is how many retries of an activity make its last failure
// worth saying while the batch waits: the retries of an ordinary URL
// (max_attempts 3 by default) stay quiet.
const retriedOften = 2

// partsPerPoll bounds the part workflows of a large batch described on
// one poll; the others are described on the next ones.
const partsPerPoll = 4

// cpuActivities are the activity types CPU workers run, for an activity
// whose task queue the server does not say.
var cpuActivities = []string{"HashChunk", "CheckProcess"}

// retryWatch finds the activity of a batch, or of its running parts,
// retried most often, and what its last attempt failed with.
type retryWatch struct {
	b          *bfclient.Batch
	fetchQueue string
	cpuQueue   string
	next       int                        // the pending part to describe first on the next poll
	parts      map[string]retriedActivity // by part workflow ID: the last word of each
	// counts reads the running chunks' heartbeats in what poll describes;
	// fetched is the URLs they had done on the last poll that described
	// the batch.
	counts  *chunkCounts
	fetched int
	read    int // the bytes the last poll's describes returned
}

// retriedActivity is a pending activity retried more than retriedOften
// times.
type retriedActivity struct {
	role, kind string
	attempt    int32 // the attempt that failed
	message    string
}

// note is the line the starter shows for a, and its key (a without the
// attempt: the news when not on a terminal).
func (a retriedActivity) note() (text, key string) {
	text = fmt.Sprintf("%s %s attempt %d failed: %s", a.role, a.kind, a.attempt, a.message)
	return text, a.role + " " + a.kind + ": " + a.message
}

// poll describes the batch and up to partsPerPoll of its parts. found is
// false when nothing is retried often; err is the batch's describe error.
func (r *retryWatch) poll(ctx context.Context) (worst retriedActivity, found bool, err error) {
	d, err := describe(ctx, r.b, nil)
	if err != nil {
		return worst, false, err
	}
	r.read = proto.Size(d)
	worst, found = r.worstOf(d.GetPendingActivities())
	fetched := r.counts.saw(r.b.ID(), d.GetPendingActivities())
	children := d.GetPendingChildren()
	pending := map[string]bool{r.b.ID(): true}
	for _, ch := range children {
		pending[ch.GetWorkflowId()] = true
	}
	r.counts.forget(pending)
	for id := range r.parts {
		if !pending[id] {
			delete(r.parts, id) // finished
		}
	}
	for i := range min(len(children), partsPerPoll) {
		ch := children[(r.next+i)%len(children)]
		cd, err := describe(ctx, r.b, ch)
		if err != nil {
			continue // ended since, or slow to answer: its last word stands
		}
		r.read += proto.Size(cd)
		// Only parts described now: a count seen before may be in the
		// batch's progress since.
		fetched += r.counts.saw(ch.GetWorkflowId(), cd.GetPendingActivities())
		if a, ok := r.worstOf(cd.GetPendingActivities()); ok {
			r.parts[ch.GetWorkflowId()] = a
		} else {
			delete(r.parts, ch.GetWorkflowId())
		}
	}
	r.next += partsPerPoll
	r.fetched = fetched
	for _, a := range r.parts {
		if !found || worse(a, worst) {
			worst, found = a, true
		}
	}
	return worst, found, nil
}

// describe describes the batch, or its part (when not nil), for 5s at the
// most.
func describe(ctx context.Context, b *bfclient.Batch, part *workflowpb.PendingChildExecutionInfo) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if part == nil {
		return b.Describe(ctx)
	}
	return b.DescribePart(ctx, part)
}

// worstOf is the activity of acts retried most often, if one was more
// than retriedOften times.
func (r *retryWatch) worstOf(acts []*workflowpb.PendingActivityInfo) (worst retriedActivity, found bool) {
	for _, act := range acts {
		// Attempt is the attempt running or waiting to; LastFailure
		// is the one before.
		f := act.GetLastFailure()
		if f == nil || act.GetAttempt()-1 <= retriedOften {
			continue
		}
		msg := f.GetMessage()
		for c := f.GetCause(); msg == "" && c != nil; c = c.GetCause() {
			msg = c.GetMessage()
		}
		a := retriedActivity{
			role:    r.roleOf(act),
			kind:    act.GetActivityType().GetName(),
			attempt: act.GetAttempt() - 1,
			message: strings.Join(strings.Fields(plainText(msg)), " "), // one line
		}
		if !found || worse(a, worst) {
			worst, found = a, true
		}
	}
	return worst, found
}

// worse: a was retried more often than b, or as often and sorts first
// (the same one on every poll).
func worse(a, b retriedActivity) bool {
	if a.attempt != b.attempt {
		return a.attempt > b.attempt
	}
	return a.role+a.kind+a.message < b.role+b.kind+b.message
}

// roleOf is the kind of worker that runs act: its task queue's, or its
// type's when the server does not say the queue.
func (r *retryWatch) roleOf(act *workflowpb.PendingActivityInfo) string {
	switch act.GetActivityOptions().GetTaskQueue().GetName() {
	case r.cpuQueue:
		return "cpu"
	case r.fetchQueue:
		return "fetch"
	}
	if slices.Contains(cpuActivities, act.GetActivityType().GetName()) {
		return "cpu"
	}
	return "fetch"
}

// newRetryWatch watches batch b, started with o.
func newRetryWatch(b *bfclient.Batch, o *options) *retryWatch {
	cpu := o.input.CPUTaskQueue
	if cpu == "" {
		cpu = workflows.CPUTaskQueue
	}
	return &retryWatch{b: b, fetchQueue: o.taskQueue, cpuQueue: cpu, parts: map[string]retriedActivity{},
		counts: newChunkCounts(payloadConverter())}
}
