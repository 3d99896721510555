package workers

import (
	"context"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// DefaultShareRefresh is how often a fetch worker counts the fetch
// workers it shares per-host rules with.
const DefaultShareRefresh = 3 * time.Second

// pollerFresh is how recently a poller must have polled to count: a
// worker long-polls about once a minute, and one that stopped stays in
// the list for minutes (it is counted meanwhile: the others go slower,
// never faster, than the rule).
const pollerFresh = 2 * time.Minute

// pollerShare is the number of fetch workers polling a task queue for
// fetches (pollers whose identity carries their fetch slots), counted
// every refresh with DescribeTaskQueue: each one keeps its share of a
// batch's per-host rule. It is 0 until the first count (not yet known),
// and keeps its last count when the server does not answer.
type pollerShare struct {
	c     client.Client
	queue string
	n     atomic.Int64
	// joining: until when (Unix ns) this worker, new beside others,
	// holds its per-host requests back while the others count it.
	joining atomic.Int64
	every   time.Duration // the refresh, once past the first counts
	began   atomic.Int64  // when counting began (Unix ns)
	self    string        // this worker's poller identity
	members *members      // the fetch workers' records in the store (nil: none)
}

// Share is the last count (0: none yet).
func (s *pollerShare) Share() int { return int(s.n.Load()) }

// Settling is how long this worker holds back its requests under
// per-host rules yet: until its first count, and, when that count found
// other fetch workers, for one refresh of theirs and a second more (as
// long again when the refresh is under a second), so
// that they count this one before it takes a share they still take
// whole.
func (s *pollerShare) Settling() time.Duration {
	if s.n.Load() == 0 {
		if b := s.began.Load(); b != 0 && time.Since(time.Unix(0, b)) > s.every+time.Second {
			// Still none: the server does not say (DescribeTaskQueue
			// refused?). Go on as one worker among unknown others.
			return 0
		}
		return 50 * time.Millisecond // not counted yet: ask again soon
	}
	return max(0, time.Until(time.Unix(0, s.joining.Load())))
}

// refresh counts the fetch workers now: the larger of the server's list
// of pollers and the workers' records in the store. It keeps the last
// count when neither answers.
func (s *pollerShare) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := s.pollers(ctx)
	if s.members != nil {
		// The server lists the pollers one partition of the queue saw:
		// a worker may be missing from it for a while, never from the
		// records in the store.
		if m, merr := s.members.count(ctx, s.every); merr == nil {
			n, err = max(n, m), nil
		}
	}
	if n > 0 {
		if s.n.Load() == 0 && n > 1 {
			s.joining.Store(time.Now().Add(s.every + min(s.every, time.Second)).UnixNano())
		}
		s.n.Store(int64(n))
	}
	return err
}

// pollers is the number of fetch workers the server lists as polling
// the queue for fetches (0 when it lists none, not even this one).
func (s *pollerShare) pollers(ctx context.Context) (int, error) {
	d, err := s.c.DescribeTaskQueue(ctx, s.queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, p := range d.GetPollers() {
		id := p.GetIdentity()
		if _, ok := FetchSlotsOf(id); !ok || seen[id] || time.Since(p.GetLastAccessTime().AsTime()) > pollerFresh {
			continue
		}
		seen[id] = true
	}
	if s.self != "" && len(seen) > 0 {
		// Others seen before this worker's own first poll shows: it is
		// one more (seeing none, not even itself, counts nothing yet).
		seen[s.self] = true
	}
	return len(seen), nil
}

// run refreshes every interval until ctx is done. The first counts come
// sooner (after 1 s, then 2 s, 4 s... up to every): workers started
// together, as a deployment starts them, see each other within seconds.
func (s *pollerShare) run(ctx context.Context, every time.Duration) {
	wait := min(time.Second, every)
	s.began.Store(time.Now().UnixNano())
	for {
		_ = s.refresh(ctx) // a failed count keeps the last one
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			s.members.leave(context.Background())
			return
		}
		wait = min(2*wait, every)
	}
}
