package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
)

func throughput(c *config, st *stack, s *site) error {
	urls := s.smallURLs(c.urls, "tp")
	clock := cpuClock{}
	if st.worker != nil {
		clock.worker = st.worker.Process.Pid
	}
	c0 := clock.read()
	bd, err := baseline(urls, c.inFlight, c.perHost)
	bcpu := clock.read().sub(c0)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	c1 := clock.read()
	_, run, dd, err := durableRun(st, s.smallURLs(c.urls, "tp2"), c.inFlight)
	dcpu := clock.read().sub(c1)
	pprof.StopCPUProfile()
	if err != nil {
		return err
	}
	c.historyRuns = append(c.historyRuns, run)
	b, d := float64(c.urls)/bd.Seconds(), float64(c.urls)/dd.Seconds()
	fmt.Printf("\n== throughput: %d URLs, %v server latency, %d in flight, %d-byte pages\n", c.urls, c.latency, c.inFlight, c.bodyBytes)
	fmt.Printf("baseline (plain Go)    %8.0f URLs/s  (%v)\n", b, bd.Round(time.Millisecond))
	fmt.Printf("batchfetch (durable)   %8.0f URLs/s  (%v)\n", d, dd.Round(time.Millisecond))
	fmt.Printf("ratio durable/baseline %8.2f\n", d/b)
	fmt.Printf("CPU per URL: baseline %s (client and site); durable %s in the bench process (site, server, starter), %s in the worker process\n",
		perURL(bcpu.self, c.urls), perURL(dcpu.self, c.urls), perURL(dcpu.worker, c.urls))
	phases, err := phaseTimes(st, run.GetID(), run.GetRunID())
	if err != nil {
		return err
	}
	fmt.Printf("where the durable time went: %s\n", phases)
	return nil
}

// phaseTimes sums, per activity type, the time from the first start to
// the last completion in a run and its children.
func phaseTimes(st *stack, id, runID string) (string, error) {
	type span struct {
		first, last time.Time
		n           int
		queued, ran time.Duration // scheduled to started, started to completed
	}
	spans := map[string]*span{}
	var order []string
	var walk func(id, runID string) error
	walk = func(id, runID string) error {
		iter := st.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		types := map[int64]string{}
		scheduled := map[int64]time.Time{}
		startedAt := map[int64]time.Time{} // by started event ID
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				return err
			}
			t := ev.GetEventTime().AsTime()
			if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
				types[ev.GetEventId()] = a.GetActivityType().GetName()
				scheduled[ev.GetEventId()] = t
			}
			name := ""
			if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
				name = types[a.GetScheduledEventId()]
				startedAt[ev.GetEventId()] = t
			}
			var queued, ran time.Duration
			completed := false
			if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
				name = types[a.GetScheduledEventId()]
				// The started event is written with the completion: its
				// time is when the task was handed to the worker.
				queued = startedAt[a.GetStartedEventId()].Sub(scheduled[a.GetScheduledEventId()])
				ran = t.Sub(startedAt[a.GetStartedEventId()])
				completed = true
			}
			if name != "" {
				sp, ok := spans[name]
				if !ok {
					sp = &span{first: t, last: t}
					spans[name] = sp
					order = append(order, name)
				}
				if t.Before(sp.first) {
					sp.first = t
				}
				if t.After(sp.last) {
					sp.last = t
				}
				if completed {
					sp.n++
					sp.queued += queued
					sp.ran += ran
				}
			}
			if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
				if err := walk(a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(id, runID); err != nil {
		return "", err
	}
	var parts []string
	for _, name := range order {
		sp := spans[name]
		part := fmt.Sprintf("%s %v", name, sp.last.Sub(sp.first).Round(time.Millisecond))
		if sp.n > 1 {
			part += fmt.Sprintf(" (%d, each %v queued, %v running on average)", sp.n,
				(sp.queued / time.Duration(sp.n)).Round(100*time.Microsecond), (sp.ran / time.Duration(sp.n)).Round(100*time.Microsecond))
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", "), nil
}
