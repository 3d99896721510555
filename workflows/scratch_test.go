package workflows

import (
	"fmt"
	"testing"
	"time"
)

// A chunk's bodies are removed once its hash is recorded, while the batch
// goes on, never before: scratch space follows the work in flight.
func TestHashedBodiesAreRemovedAsTheBatchGoes(t *testing.T) {
	for _, n := range []int{40, 300, 5000} { // one URL per activity, chunks, staged parts
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			env, f := newEnv(t)
			urls := make([]string, n)
			for i := range urls {
				urls[i] = fmt.Sprintf("http://a.example/page/%d", i)
			}
			env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: 4})
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.removedEarly) > 0 {
				t.Errorf("the bodies of runs %v were removed before their hash", f.removedEarly)
			}
			for first := range f.fetchedWork {
				if !f.removedWork[first] {
					t.Errorf("the bodies fetched from URL %d were never removed", first)
				}
			}
			if f.startsAfterRemoval == 0 {
				t.Error("no body was removed before the last fetch started: scratch space grows with the batch")
			}
		})
	}
}

// When hashing falls behind, fetching waits: the bytes fetched and not
// yet hashed stay under the bound the fetch workers give.
func TestFetchingWaitsForTheHashBacklog(t *testing.T) {
	env, f := newEnv(t)
	f.backlog, f.hashDelay = 4<<20, 20*time.Millisecond
	urls := make([]string, 200) // chunks of 2 URLs of 1 MiB each
	for i := range urls {
		urls[i] = fmt.Sprintf("http://a.example/mib/%d", i)
	}
	env.ExecuteWorkflow(BatchFetch, Input{URLs: urls, MaxInFlight: 2})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var out Output
	if err := env.GetWorkflowResult(&out); err != nil || out.OK != len(urls) {
		t.Fatalf("%d ok of %d (%v)", out.OK, len(urls), err)
	}
	// A fetch starts under the bound; the fetches already running (2 URLs
	// of 1 MiB at once) may add theirs.
	if most := f.backlog + 2<<20; f.maxUnhashed > most {
		t.Errorf("a fetch started with %d bytes waiting for their hash, want at most the bound and what was in flight, %d", f.maxUnhashed, most)
	}
}
