package main

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/workflows"
)

// retries measures the waits between a URL's attempts as the server sees
// them, for a few initial backoffs: a URL failing twice (503) in a batch of
// its own (one activity, Temporal's retry timers) and in a chunked batch
// (the chunk activity's own timers). The backoff doubles: the waits asked
// for are b and 2b.
func retries(c *config, st *stack, s *site) error {
	fmt.Printf("\n== retries: waits between attempts (503, 503, 200), asked for vs seen at the server\n")
	fmt.Printf("%-10s %-22s %-22s %-22s\n", "backoff", "asked (b, 2b)", "one URL per activity", "chunked")
	for _, b := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second} {
		row := []string{}
		for _, mode := range []string{"one", "chunk"} {
			path := fmt.Sprintf("/flaky/%s/%v", mode, b)
			urls := []string{s.base + path + "?fail=2"}
			if mode == "chunk" {
				urls = append(urls, s.smallURLs(workflows.InlineLimit/10, "retries-"+b.String())...)
			}
			run, err := st.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
				workflows.Input{URLs: urls, InitialBackoff: b.String(), MaxAttempts: 3})
			if err != nil {
				return err
			}
			var out workflows.Output
			if err := run.Get(context.Background(), &out); err != nil {
				return err
			}
			if r := out.Results[0]; r.Outcome != workflows.OutcomeOK || r.Attempts != 3 {
				return fmt.Errorf("%s: %+v, want ok after 3 attempts", path, r)
			}
			s.mu.Lock()
			at := s.asked[path]
			s.mu.Unlock()
			row = append(row, fmt.Sprintf("%v, %v", at[1].Sub(at[0]).Round(10*time.Millisecond), at[2].Sub(at[1]).Round(10*time.Millisecond)))
		}
		fmt.Printf("%-10v %-22s %-22s %-22s\n", b, fmt.Sprintf("%v, %v", b, 2*b), row[0], row[1])
	}
	// What each mode costs in history: events per URL of a batch of 100
	// (one activity per URL) and of 101 (chunks of 2) and 1,000 (chunks of
	// 10) URLs, every URL ok at the first attempt.
	for _, n := range []int{100, 101, workflows.InlineLimit} {
		run, err := st.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.WorkflowName,
			workflows.Input{URLs: s.smallURLs(n, fmt.Sprint("events-", n))})
		if err != nil {
			return err
		}
		if err := run.Get(context.Background(), nil); err != nil {
			return err
		}
		events, _, err := countEvents(st, run.GetID(), run.GetRunID())
		if err != nil {
			return err
		}
		fmt.Printf("history of a batch of %d URLs: %d events, %.2f per URL\n", n, events, float64(events)/float64(n))
	}
	return nil
}
