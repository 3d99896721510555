package main

import (
	"testing"

	"github.com/batchfetch/batchfetch/workflows"
)

func TestSummaryCountsRobotsDisallowed(t *testing.T) {
	out := workflows.Output{OK: 1, Failed: 3, Total: 4, Results: []workflows.Result{
		{Outcome: workflows.OutcomeOK}, {Outcome: workflows.OutcomeRobotsDisallowed},
		{Outcome: workflows.OutcomeRobotsDisallowed}, {Outcome: workflows.OutcomeCanceled},
	}}
	if got, want := summary(out), "1 ok, 2 failed (2 disallowed by robots.txt), 1 canceled"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	out = workflows.Output{OK: 2, Failed: 0, Total: 2, Results: []workflows.Result{{Outcome: workflows.OutcomeOK}, {Outcome: workflows.OutcomeOK}}}
	if got, want := summary(out), "2 ok, 0 failed"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}
