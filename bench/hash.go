package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/batchfetch/batchfetch/internal/demosite"
)

func hashRate(c *config, st *stack, s *site) error {
	// Raw sha256 on one core over an in-memory buffer.
	buf := make([]byte, 64<<20)
	_, _ = io.ReadFull(demosite.Pattern{}, buf)
	start := time.Now()
	const rounds = 4
	for range rounds {
		h := sha256.New()
		h.Write(buf)
		_ = h.Sum(nil)
	}
	raw := float64(rounds*len(buf)) / time.Since(start).Seconds() / (1 << 20)
	slots := slotsOf(st.cfg)

	hashStart, hashEnd := time.Time{}, time.Time{}
	// Fetch every body first, then start a CPU worker of its own: the
	// figure is hashing alone, not hashing beside downloads.
	ctx := context.Background()
	run, stopPool, err := prefetched(st, s.largeURLs(c.loadBodies, c.loadSize, "hash"), "bench-hash-cpu")
	if err != nil {
		return err
	}
	defer stopPool()
	if err := run.Get(ctx, nil); err != nil {
		return err
	}
	// The hashing phase: first hash start to last hash end, from history.
	iter := st.client.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]bool{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return err
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "HashChunk" {
			scheduled[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] {
			t := ev.GetEventTime().AsTime()
			if hashStart.IsZero() || t.Before(hashStart) {
				hashStart = t
			}
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] {
			t := ev.GetEventTime().AsTime()
			if t.After(hashEnd) {
				hashEnd = t
			}
		}
	}
	total := float64(int64(c.loadBodies)*c.loadSize) / (1 << 20)
	got := total / hashEnd.Sub(hashStart).Seconds()
	fmt.Printf("\n== hash: %d x %d MiB bodies on %d CPU slots\n", c.loadBodies, c.loadSize>>20, slots)
	fmt.Printf("raw crypto/sha256, one core      %7.0f MB/s  (x %d slots = %.0f MB/s)\n", raw, slots, raw*float64(slots))
	fmt.Printf("hash activities, first start to last end   %7.0f MB/s  ratio to raw x slots %.2f\n", got, got/(raw*float64(slots)))
	return nil
}
