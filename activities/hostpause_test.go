package activities

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/politeness"
)

// storeOnly is a blob store that cannot list: workers read the record
// of each host they are about to request.
type storeOnly struct{ blobstore.Store }

// TestHostPauseReachesOtherWorker: worker A gets a 429 with Retry-After
// and pauses the host; worker B, on the same blob store (a directory),
// refuses the host within about a second (its reading interval) until
// A's time, then ramps back (a quarter of max_in_flight 4, half, all),
// while another host goes on. On a store that cannot list, B reads the
// host's record instead.
func TestHostPauseReachesOtherWorker(t *testing.T) {
	for name, wrap := range map[string]func(blobstore.Store) blobstore.Store{
		"listing":  func(s blobstore.Store) blobstore.Store { return s },
		"per host": func(s blobstore.Store) blobstore.Store { return storeOnly{s} },
	} {
		t.Run(name, func(t *testing.T) {
			dir, err := blobstore.NewDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			const batch, host = "batches/run-1", "slow.example"
			rule := politeness.Rule{MaxInFlight: 4}
			var ahead atomic.Int64 // B's clock runs ahead of the wall by this
			a := &Fetcher{Store: wrap(dir), Limits: politeness.New(politeness.Config{})}
			b := &Fetcher{Store: wrap(dir), Limits: politeness.New(politeness.Config{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})}
			a.Limits.SetRule(batch, rule)
			b.Limits.SetRule(batch, rule)
			hosts := func() []string { return []string{host, "quick.example"} }
			ctx := context.Background()
			b.hostPauses().refresh(ctx, batch, hosts) // before any pause
			if release, _, ok := b.Limits.TryStart(batch, host); !ok {
				t.Fatal("B refuses the host before any pause")
			} else {
				release()
			}

			gate := &hostGate{limits: a.Limits, batch: batch, host: host, pauses: a.hostPauses()}
			sent := time.Now()
			gate.paused(&failure{status: http.StatusTooManyRequests, delay: 2 * time.Second}, 0)
			until := sent.Add(2 * time.Second)
			if _, _, ok := a.Limits.TryStart(batch, host); ok {
				t.Fatal("A takes the host it paused")
			}

			var seen time.Duration
			for {
				b.hostPauses().refresh(ctx, batch, hosts)
				release, wait, ok := b.Limits.TryStart(batch, host)
				if !ok {
					seen = time.Since(sent)
					if wait <= 0 || time.Now().Add(wait).After(until.Add(50*time.Millisecond)) {
						t.Errorf("B waits %s, want until A's pause ends (%s from now)", wait, time.Until(until))
					}
					break
				}
				release()
				if time.Since(sent) > 3*time.Second {
					t.Fatal("B never saw A's pause")
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Logf("B saw the pause %s after A recorded it", seen)
			if seen > hostPauseEvery+200*time.Millisecond {
				t.Errorf("B saw the pause after %s, want within about %s", seen, hostPauseEvery)
			}
			if release, _, ok := b.Limits.TryStart(batch, "quick.example"); !ok {
				t.Error("the pause holds another host")
			} else {
				release()
			}

			// B's clock past A's time: the host ramps back.
			opens := func(at time.Duration) int {
				ahead.Store(int64(time.Until(until) + at))
				b.hostPauses().refresh(ctx, batch, hosts) // the record read again changes nothing
				var releases []func()
				for range rule.MaxInFlight + 1 {
					release, _, ok := b.Limits.TryStart(batch, host)
					if !ok {
						break
					}
					releases = append(releases, release)
				}
				for _, r := range releases {
					r()
				}
				return len(releases)
			}
			for _, step := range []struct {
				at   time.Duration
				want int
			}{{-100 * time.Millisecond, 0}, {10 * time.Millisecond, 1}, {1100 * time.Millisecond, 2}, {2100 * time.Millisecond, 4}} {
				if got := opens(step.at); got != step.want {
					t.Errorf("%s after the pause's end: %d requests at once, want %d", step.at, got, step.want)
				}
			}
		})
	}
}

// TestHostPauseBounds: a pause lasts the Retry-After, at most an hour
// (a URL it would hold past its url_timeout ends at once instead); a record is believed for an hour at most, and
// a later record is never replaced by an earlier one.
func TestHostPauseBounds(t *testing.T) {
	for _, c := range []struct{ d, want time.Duration }{
		{2 * time.Second, 2 * time.Second},
		{time.Minute, time.Minute},
		{maxRetryAfter, maxRetryAfter},
		{2 * maxRetryAfter, maxRetryAfter},
	} {
		if got := pauseFor(c.d); got != c.want {
			t.Errorf("pauseFor(%s) = %s, want %s", c.d, got, c.want)
		}
	}
	dir, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const batch, host = "batches/run-2", "h.example"
	a := &Fetcher{Store: dir, Limits: politeness.New(politeness.Config{})}
	later := time.Now().Add(time.Minute)
	a.hostPauses().publish(batch, host, later)
	a.hostPauses().publish(batch, host, later.Add(-30*time.Second))
	ctx := context.Background()
	if rec := a.hostPauses().load(ctx, HostPauseKey(batch, host)); rec == nil || !rec.Until.Equal(later) {
		t.Errorf("record %+v, want the later time %s kept", rec, later)
	}

	// A record of a century holds the host an hour at most.
	a.hostPauses().publish(batch, host, time.Now().Add(100*365*24*time.Hour))
	b := &Fetcher{Store: dir, Limits: politeness.New(politeness.Config{})}
	b.Limits.SetRule(batch, politeness.Rule{Rate: 1})
	b.hostPauses().refresh(ctx, batch, nil)
	if _, wait, ok := b.Limits.TryStart(batch, host); ok || wait > maxRetryAfter {
		t.Errorf("a century's record: ok %v, wait %s; want refused for an hour at most", ok, wait)
	}
	if err := dir.DeletePrefix(ctx, batch); err != nil { // the batch's end (RemoveBlobs)
		t.Fatal(err)
	}
	if left, err := dir.List(ctx, HostPausePrefix(batch), 10); err != nil || len(left) != 0 {
		t.Errorf("left after the batch's scratch went: %v, %v", left, err)
	}
}
