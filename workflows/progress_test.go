package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/activities"
)

// The progress query says what was asked (max_in_flight) next to what
// runs: a batch whose workers have fewer fetch slots than it asks for has
// no more fetches in flight than they have, and a warning naming the flag.
func TestProgressSaysWhenWorkersHaveFewerSlotsThanAsked(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterActivityWithOptions(func(ctx context.Context, req activities.FetchURLRequest) (*activities.FetchChunkResult, error) {
		out, err := f.FetchURL(ctx, req)
		if out != nil {
			out.Worker = &activities.FetchWorker{Identity: "1@host" + "@fetch-slots=2", FetchSlots: 2}
		}
		return out, err
	}, activity.RegisterOptions{Name: "FetchURL"})
	var mid Progress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(ProgressQuery)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(&mid); err != nil {
			t.Error(err)
		}
	}, time.Second)
	env.RegisterDelayedCallback(env.CancelWorkflow, 2*time.Second)
	urls := []string{"http://a.example/1", "http://a.example/2"}
	for range 4 {
		urls = append(urls, "http://a.example/hang")
	}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: 10})
	if mid.Done != 2 || mid.MaxInFlight != 10 || mid.FetchSlots != 2 || mid.InFlight != 2 {
		t.Errorf("progress %+v, want 2 done, max_in_flight 10, fetch_slots 2 and 2 in flight (of the 4 asked for)", mid)
	}
	for _, want := range []string{"2 fetch slots", "max_in_flight 10", "--fetch-slots"} {
		if !strings.Contains(mid.Warning, want) {
			t.Errorf("warning %q does not say %q", mid.Warning, want)
		}
	}
}

// Workers with the slots asked for: no warning, and in_flight is what runs.
func TestProgressHasNoWarningWhenSlotsSuffice(t *testing.T) {
	p := Progress{Total: 10, Done: 2, InFlight: 8, MaxInFlight: 8, FetchSlots: 5000}.answer()
	if p.Warning != "" || p.InFlight != 8 {
		t.Errorf("got %+v, want 8 in flight and no warning", p)
	}
	var w fetchWorkers
	for i := range 100 {
		w.saw(&activities.FetchWorker{Identity: []string{"a", "b", "c"}[i%3], FetchSlots: 100})
	}
	if got := w.saw(nil); got != 300 {
		t.Errorf("three workers of 100 slots: %d slots, want 300", got)
	}
}
