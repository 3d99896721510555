package workflows

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/activities"
)

// What the user asks for is what runs: for every shape of batch (inline
// chunks of a few URLs, staged chunks of 500, parts of 20 chunks) the
// fetches running at once reach max_in_flight, and no chunk holds slots
// it leaves idle for most of its run (a chunk of 500 at 400 at once runs
// a second wave of 100 with 400 slots).
func TestMaxInFlightIsReachedForEveryShape(t *testing.T) {
	for _, tc := range []struct{ urls, maxInFlight int }{
		{400, 20},     // inline, chunks of 4
		{3000, 499},   // staged, 6 chunks
		{20000, 2000}, // two parts
		{20000, 5000}, // two parts, the contract's largest
	} {
		t.Run(fmt.Sprintf("%d URLs at %d", tc.urls, tc.maxInFlight), func(t *testing.T) {
			env, f := newEnv(t)
			var mu sync.Mutex
			var now, peak int
			worst, worstChunk := 1.0, ""
			// Every request takes one wave's time: a chunk takes as many
			// waves as its concurrency needs to fetch all its URLs.
			env.RegisterActivityWithOptions(func(ctx context.Context, req activities.FetchChunkRequest) (*activities.FetchChunkResult, error) {
				mu.Lock()
				n := len(req.URLs)
				if n == 0 {
					f.mu.Lock()
					n = len(f.staged[req.Chunk])
					f.mu.Unlock()
				}
				waves := (n + req.Concurrency - 1) / req.Concurrency
				if used := float64(n) / float64(waves*req.Concurrency); used < worst {
					worst, worstChunk = used, fmt.Sprintf("chunk %d: %d URLs at %d at once", req.Chunk, n, req.Concurrency)
				}
				now += req.Concurrency
				peak = max(peak, now)
				mu.Unlock()
				time.Sleep(time.Duration(waves) * 50 * time.Millisecond)
				mu.Lock()
				now -= req.Concurrency
				mu.Unlock()
				return f.FetchChunk(ctx, req)
			}, activity.RegisterOptions{Name: "FetchChunk"})
			env.ExecuteWorkflow(BatchFetch, Input{URLs: largeURLs(tc.urls), MaxInFlight: tc.maxInFlight})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			var out Output
			if err := env.GetWorkflowResult(&out); err != nil || out.OK != tc.urls {
				t.Fatalf("%d of %d ok (%v)", out.OK, tc.urls, err)
			}
			if peak > tc.maxInFlight || peak < tc.maxInFlight*99/100 {
				t.Errorf("at most %d fetches ran at once, want max_in_flight %d", peak, tc.maxInFlight)
			}
			if worst < 0.8 {
				t.Errorf("%s: %.0f%% of the slots it held were busy, want 80%% or more", worstChunk, 100*worst)
			}
		})
	}
}

// The share each chunk gets, for the shapes the README names.
func TestChunkConcurrency(t *testing.T) {
	const part = ChunksPerPart * StagedChunkSize
	for _, tc := range []struct {
		name                                         string
		maxInFlight, chunkSize, urls, sharers, share int
	}{
		{"the default, a part", 100, StagedChunkSize, part, 5, 20}, // 5 chunks at once
		{"the default, inline", 100, 10, InlineLimit, chunksInFlight, 10},
		{"500, a part", 500, StagedChunkSize, part, 5, 100},
		{"not a multiple of 5", 499, StagedChunkSize, part, 5, 24}, // all 20 chunks, 21 waves: as few as 499 at once allow
		{"1,000: 4 chunks of 250", 1000, StagedChunkSize, part, 5, 250},
		{"2,000: whole chunks", 2000, StagedChunkSize, part, 5, 500},
		{"5,000: 10 whole chunks", 5000, StagedChunkSize, part, 5, 500},
		{"a batch of 3 chunks", 500, StagedChunkSize, 1500, 5, 500}, // one at a time: 3 request times, where all 3 at once take 4
		{"inline, few in flight", 20, 4, 400, chunksInFlight, 2},    // 10 chunks of 2, where 3 each left 2 slots idle
		{"one URL per chunk", 5000, 1, 100, chunksInFlight, 1},
		{"one in flight", 1, StagedChunkSize, 3000, 5, 1},
	} {
		if got := chunkConcurrency(tc.maxInFlight, tc.chunkSize, tc.urls, tc.sharers); got != tc.share {
			t.Errorf("%s: %d URLs in chunks of %d at %d in flight: each chunk %d at once, want %d", tc.name, tc.urls, tc.chunkSize, tc.maxInFlight, got, tc.share)
		}
	}
}
