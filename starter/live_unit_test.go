package main

import (
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/workflows"
)

func pendingChunk(t *testing.T, kind, id string, details any) *workflowpb.PendingActivityInfo {
	t.Helper()
	act := &workflowpb.PendingActivityInfo{ActivityId: id, ActivityType: &commonpb.ActivityType{Name: kind}}
	if details != nil {
		p, err := converter.GetDefaultDataConverter().ToPayloads(details)
		if err != nil {
			t.Fatal(err)
		}
		act.HeartbeatDetails = p
	}
	return act
}

// A chunk counts the URLs its fetch's heartbeat has done, then as many
// while it is hashed (more once its hash has more results), and nothing
// once it is no longer pending; other activities count nothing.
func TestChunkCountsFollowAChunkFromFetchToHash(t *testing.T) {
	cc := newChunkCounts(converter.GetDefaultDataConverter())
	fetched := func(n int) activities.FetchCheckpoint {
		return activities.FetchCheckpoint{Summary: "…", Done: make([]activities.Fetched, n)}
	}
	hashed := func(n int) map[string]any {
		return map[string]any{"summary": "…", "results": make([]activities.Result, n)}
	}
	steps := []struct {
		name string
		acts []*workflowpb.PendingActivityInfo
		want int
	}{
		{"fetches", []*workflowpb.PendingActivityInfo{
			pendingChunk(t, "FetchChunk", "fetch-0", fetched(3)),
			pendingChunk(t, "FetchChunkWithRequest", "fetch-1.1", fetched(2)),
			pendingChunk(t, "FetchChunk", "fetch-2", nil), // no heartbeat yet
			pendingChunk(t, "StageURLs", "5", fetched(7)),
			pendingChunk(t, "FetchURL", "fetch-3", fetched(1)),
		}, 5},
		{"chunk 0 hashed, before its first heartbeat", []*workflowpb.PendingActivityInfo{
			pendingChunk(t, "HashChunk", "hash-0", nil),
			pendingChunk(t, "FetchChunkWithRequest", "fetch-1.1", fetched(4)),
		}, 3 + 4},
		{"chunk 0's hash has more results than its fetch was seen to have", []*workflowpb.PendingActivityInfo{
			pendingChunk(t, "HashChunk", "hash-0", hashed(5)),
			pendingChunk(t, "HashChunk", "hash-1.1", hashed(1)),
		}, 5 + 4},
		{"chunk 0 ended", []*workflowpb.PendingActivityInfo{
			pendingChunk(t, "HashChunk", "hash-1.1", hashed(1)),
		}, 4},
		{"chunk 0 again: a new start", []*workflowpb.PendingActivityInfo{
			pendingChunk(t, "HashChunk", "hash-0", nil),
		}, 0},
	}
	for _, s := range steps {
		if got := cc.saw("batch", s.acts); got != s.want {
			t.Errorf("%s: %d URLs, want %d", s.name, got, s.want)
		}
	}
	cc.saw("batch/part-1", []*workflowpb.PendingActivityInfo{pendingChunk(t, "FetchChunk", "fetch-0", fetched(9))})
	cc.forget(map[string]bool{"batch": true})
	if _, ok := cc.seen["batch/part-1"]; ok {
		t.Error("a part no longer running is remembered")
	}
	if got := cc.saw("batch/part-1", []*workflowpb.PendingActivityInfo{pendingChunk(t, "HashChunk", "hash-0", nil)}); got != 0 {
		t.Errorf("a forgotten part's chunk counts %d, want 0", got)
	}
	if cc.saw("batch", nil); len(cc.seen["batch"]) != 0 {
		t.Errorf("a workflow with no chunk pending keeps %v", cc.seen["batch"])
	}
}

// The bar never goes back, and its final line is the batch's counts.
func TestBarStateNeverGoesBack(t *testing.T) {
	var b barState
	for _, tc := range []struct{ offer, want int }{{500, 500}, {730, 730}, {500, 730}, {1000, 1000}} {
		if got := b.offer(tc.offer); got != tc.want {
			t.Errorf("offer(%d) = %d, want %d", tc.offer, got, tc.want)
		}
	}
	b.finish(workflows.Output{Total: 1200, OK: 1190, Failed: 10})
	if got := b.finalLine(); got != "" {
		t.Errorf("a final line with no bar drawn before: %q", got)
	}
	b.line(workflows.Progress{Total: 1200, Done: 1000, OK: 1000, InFlight: 100, MaxInFlight: 100}, time.Now())
	want := "[########################] 1200/1200  ok 1190  failed 10  in flight 0/100"
	if got := b.finalLine(); got != want {
		t.Errorf("final line %q, want %q", got, want)
	}
}

// A batch that obeys robots.txt fetches its chunks under another name:
// its running chunks count as much as any.
func TestChunkCountsCountTheFetchesOfABatchThatObeysRobots(t *testing.T) {
	cc := newChunkCounts(converter.GetDefaultDataConverter())
	acts := []*workflowpb.PendingActivityInfo{
		pendingChunk(t, activities.FetchChunkObeyingRobots, "fetch-0", activities.FetchCheckpoint{Done: make([]activities.Fetched, 7)}),
	}
	if got := cc.saw("batch", acts); got != 7 {
		t.Errorf("a chunk of a batch that obeys robots.txt counts %d URLs, want the 7 its heartbeat has done", got)
	}
}

// Describes that read much are made less often: a second apart for small
// batches, up to 30 s for ones whose running chunks carry large
// checkpoints.
func TestDescribesReadAtMostAMegabyteASecond(t *testing.T) {
	for _, tc := range []struct {
		read int
		want time.Duration
	}{
		{0, time.Second}, {200 << 10, time.Second}, {1 << 20, time.Second},
		{5 << 20, 5 * time.Second}, {500 << 20, 30 * time.Second},
	} {
		if got := pollWait(tc.read); got != tc.want {
			t.Errorf("pollWait(%d) = %v, want %v", tc.read, got, tc.want)
		}
	}
}
