package main

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
)

func historyReport(c *config, st *stack) error {
	largest, where := 0, ""
	for _, run := range c.historyRuns {
		n, children, err := countEvents(st, run.GetID(), run.GetRunID())
		if err != nil {
			return err
		}
		if n > largest {
			largest, where = n, run.GetID()
		}
		for _, ch := range children {
			m, _, err := countEvents(st, ch[0], ch[1])
			if err != nil {
				return err
			}
			if m > largest {
				largest, where = m, ch[0]
			}
		}
	}
	if where != "" {
		fmt.Printf("\n== history: the largest run (%s) has %d events (warning line 10,240)\n", where, largest)
	}
	return nil
}

func countEvents(st *stack, id, runID string) (int, [][2]string, error) {
	iter := st.client.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	var children [][2]string
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			return 0, nil, err
		}
		n++
		if a := ev.GetChildWorkflowExecutionStartedEventAttributes(); a != nil {
			children = append(children, [2]string{a.GetWorkflowExecution().GetWorkflowId(), a.GetWorkflowExecution().GetRunId()})
		}
	}
	return n, children, nil
}
