package workflows

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/activities"
)

// A batch owns the input files its input marks (remove_inputs) and those
// a signal hands it: it removes them after its own blobs, whatever ends
// it, and only those.
func TestABatchRemovesTheInputsItOwns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     Input
		cancel bool
		signal []string
		want   []string
	}{
		{name: "refused as invalid", in: Input{URLsFile: "inputs/a.txt", RemoveInputs: true, Mode: "bogus"}, want: []string{"inputs/a.txt"}},
		{name: "canceled", in: Input{URLs: []string{"http://a.example/hang"}, PreviousFile: "inputs/p.jsonl", RemoveInputs: true}, cancel: true, want: []string{"inputs/p.jsonl"}},
		{name: "its body", in: Input{URLs: []string{"http://a.example/hang"}, RequestFields: activities.RequestFields{Method: "POST", Body: &activities.BodyValue{Key: "inputs/b.body"}}, RemoveInputs: true}, cancel: true, want: []string{"inputs/b.body"}},
		{name: "not owned", in: Input{URLsFile: "lists/mine.txt", Mode: "bogus"}},
		{name: "handed by a signal", in: Input{URLs: []string{"http://a.example/hang"}}, cancel: true, signal: []string{"inputs/schedules/s.txt", "results/not-an-input.jsonl", "inputs/schedules", "inputs/other.txt"}, want: []string{"inputs/schedules/s.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, f := newEnv(t)
			if tc.signal != nil {
				env.RegisterDelayedCallback(func() { env.SignalWorkflow(AdoptInputsSignal, tc.signal) }, 500*time.Millisecond)
			}
			if tc.cancel {
				env.RegisterDelayedCallback(env.CancelWorkflow, time.Second)
			}
			env.ExecuteWorkflow(BatchFetch, tc.in)
			var canceled *temporal.CanceledError
			var appErr *temporal.ApplicationError
			if err := env.GetWorkflowError(); !(errors.As(err, &canceled) || errors.As(err, &appErr)) {
				t.Fatalf("got %v, want canceled or refused", err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			var inputs []string
			for _, k := range f.removed {
				if !strings.HasPrefix(k, "batches/") {
					inputs = append(inputs, k)
				}
			}
			if !slices.Equal(inputs, tc.want) {
				t.Errorf("removed %v, want the batch's blobs and then %v", f.removed, tc.want)
			}
		})
	}
}
