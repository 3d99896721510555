package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/politeness"
)

// chunkRun starts a chunk's URLs, Concurrency at a time: in order
// (inOrder), or, under a per-host rule, whichever URL's host is ready
// first (byHost). Either way each URL's result goes to its own place, so
// results and checkpoints are by index, whatever order the URLs ran in.
type chunkRun struct {
	f       *Fetcher
	ctx     context.Context // canceled to stop every URL
	stopAll func()
	req     FetchChunkRequest
	tasks   []URLTask
	work    string
	ho      *handoff
	sem     chan struct{}
	wg      sync.WaitGroup

	mu      *sync.Mutex // guards items, done and running
	items   []Fetched
	done    []bool
	states  []*urlState
	running map[int]int // URL index -> position, for URLs under way

	// ended hears of every URL that ends (byHost: a host may be ready).
	ended chan struct{}
	// board hears what the URLs meet at their hosts (byHost only).
	board *hostBoard
}

// inOrder starts the URLs in input order.
func (c *chunkRun) inOrder() {
	for i := range c.tasks {
		if c.done[i] {
			c.ho.stored(i, c.items[i])
			continue
		}
		if c.ctx.Err() == nil && c.ho.stopBefore(i) {
			break // the rest is the next fetch's
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
		}
		if c.ctx.Err() == nil && c.ho.stopBefore(i) {
			<-c.sem
			break
		}
		if c.ctx.Err() != nil {
			c.cancel(i)
			continue
		}
		c.launch(i, nil)
	}
}

// cancel marks the URL at i canceled before it started.
func (c *chunkRun) cancel(i int) {
	t := c.tasks[i]
	c.mu.Lock()
	c.items[i] = Fetched{Index: t.Index, URL: t.URL, Outcome: OutcomeCanceled, Error: "canceled", Attempts: c.states[i].attempts}
	c.done[i] = true
	c.mu.Unlock()
}

// launch runs the URL at i, in one of the chunk's places (taken), with
// its host's gate (nil: none).
func (c *chunkRun) launch(i int, gate *hostGate) {
	t := c.tasks[i]
	if !t.R.Retriable() {
		c.ho.startedOnce(i)
	}
	c.mu.Lock()
	c.running[t.Index] = i
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.sem }()
		r := c.f.fetchURL(c.ctx, t, c.work, c.req.Policy, c.states[i], c.req.Keep, func() bool { return c.ho.leaveOnFull(i) }, gate)
		c.mu.Lock()
		if r.Outcome != outcomeLeft {
			c.items[i], c.done[i] = r, true
		}
		delete(c.running, t.Index)
		c.mu.Unlock()
		c.ho.stored(i, r)
		if c.req.Policy.FailFast && r.Outcome != "" && r.Outcome != OutcomeCanceled {
			c.stopAll()
		}
		if c.ended != nil {
			select {
			case c.ended <- struct{}{}:
			default:
			}
		}
	}()
}

// hostRecheck bounds how long byHost waits without news before it asks
// the hosts again (a pause or another worker's share may have changed).
const hostRecheck = time.Second

// byHost starts, in each free place, the first URL in input order whose
// host is ready under rule; a URL whose host is not ready waits while
// URLs of other hosts go ahead, and is taken up when its host's wait
// has passed (or one of its requests ended). The handoff cut is at the
// first URL not started: URLs started past it are dropped from this
// fetch's result and fetched again by the next one, as after a URL left
// on a full disk. So in a fetch that may hand over early, a request that
// may not be made twice starts only in input order (all before it
// started), never past a cut; and once the bodies held would cut the
// fetch where it would hand over nothing, only the first URL not started
// may start.
func (c *chunkRun) byHost(rule politeness.Rule) {
	limits, pauses := c.f.hostLimits(), c.f.hostPauses()
	batch := c.req.Prefix
	limits.SetRule(batch, rule)
	limits.SetAttemptTimeout(batch, c.req.Policy.AttemptTimeout)
	c.ended = make(chan struct{}, 1)
	n := len(c.tasks)
	hosts := make([]string, n)
	taken := make([]bool, n) // started, or done in an earlier attempt
	earlier := make([]bool, n)
	for i, t := range c.tasks {
		hosts[i] = hostOf(t.URL)
		earlier[i] = c.done[i] // before any URL runs: done in the checkpoint
		taken[i] = earlier[i]
	}
	robots := c.newRobotsFirst()
	defer c.wanting(limits, batch, hosts, taken)()
	front := 0 // every URL before it is taken
	for {
		for ; front < n && taken[front]; front++ {
			if earlier[front] {
				c.ho.stored(front, c.items[front]) // counted as the in-order start would
			}
		}
		if front == n || (c.ctx.Err() == nil && c.ho.stopBefore(front)) {
			return
		}
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
		}
		if c.ctx.Err() != nil {
			for i := front; i < n; i++ {
				if !taken[i] {
					c.cancel(i)
				}
			}
			return
		}
		if c.ho.stopBefore(front) {
			<-c.sem
			return
		}
		pauses.refresh(c.ctx, batch, func() []string { return waitingHosts(hosts, taken, front) })
		freed := limits.Released()
		i, release, wait := c.ready(limits, batch, hosts, taken, front, robots)
		c.warn(limits)
		if i >= 0 {
			taken[i] = true
			limits.Want(batch, hosts[i], -1)
			reads := robots.started(hosts[i], i)
			c.launch(i, &hostGate{limits: limits, batch: batch, host: hosts[i], first: release, readsRobots: reads,
				pauses: pauses, board: c.board})
			continue
		}
		<-c.sem
		if wait <= 0 || wait > hostRecheck {
			wait = hostRecheck
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-freed: // a host may have a place now
		case <-c.ended:
		case <-c.ctx.Done():
		}
		t.Stop()
	}
}

// warn logs what the host limits could not do as asked (once each).
func (c *chunkRun) warn(limits *politeness.HostLimits) {
	for _, w := range limits.Warning() {
		if activity.IsActivity(c.ctx) {
			activity.GetLogger(c.ctx).Warn(w, "batch", c.req.Prefix)
		}
	}
}

// ready is the first URL from front on, not taken, whose host takes a
// request now, with that request's release; -1 and the shortest known
// wait (0: none known) when no host is ready. In a batch that obeys
// robots.txt, a host's URLs wait while one of them reads it (robots). A
// URL whose host takes it only past its url_timeout ends now (tooLate).
func (c *chunkRun) ready(limits *politeness.HostLimits, batch string, hosts []string, taken []bool, front int, robots *robotsFirst) (pos int, release func(), wait time.Duration) {
	busy := map[string]time.Duration{} // host -> its wait (0: not known)
	end := len(c.tasks)
	if c.ho.waitsForFront() {
		end = front + 1
	}
	for i := front; i < end; i++ {
		if taken[i] {
			continue
		}
		if w, ok := busy[hosts[i]]; ok {
			c.endIfTooLate(limits, batch, hosts[i], w, i, taken)
			continue
		}
		if i > front && c.ho.earlyCut() && !c.tasks[i].R.Retriable() {
			continue // in input order only
		}
		if robots.hold(c, limits, batch, hosts[i], i) {
			busy[hosts[i]] = 0 // its robots.txt first
			continue
		}
		release, w, ok := limits.TryStart(batch, hosts[i])
		if ok {
			c.board.tookAt(hosts[i], i)
			return i, release, 0
		}
		c.board.refusedAt(hosts[i], i)
		busy[hosts[i]] = w
		c.endIfTooLate(limits, batch, hosts[i], w, i, taken)
		if w > 0 && (wait == 0 || w < wait) {
			wait = w
		}
	}
	return -1, nil, wait
}

// endIfTooLate ends the URL at i, not started, now when its host takes
// it only in wait, past its url_timeout.
func (c *chunkRun) endIfTooLate(limits *politeness.HostLimits, batch, host string, wait time.Duration, i int, taken []bool) {
	if fail := tooLate(limits, batch, host, wait, c.urlDeadline(i)); fail != nil {
		taken[i] = true
		limits.Want(batch, host, -1)
		c.endTooLate(i, fail)
	}
}
