package activities

import (
	"sync"
	"time"

	"github.com/batchfetch/batchfetch/politeness"
)

// HostObserver is an Observer that also hears of requests by host class
// (limited: under a per-host rule, unlimited: without one) and of URLs
// held back for their host, by reason. Never a host's name: a label per
// host would not stay bounded.
type HostObserver interface {
	HostRequest(class string)
	HostWait(reason string)
}

// Host classes of HostObserver.HostRequest.
const (
	HostLimited   = "limited"
	HostUnlimited = "unlimited"
)

// hostBoard keeps what one chunk's URLs meet at their hosts: requests
// open, URLs waiting for their host and why, how long requests take. Its
// snapshot goes into the chunk's heartbeat and its result.
type hostBoard struct {
	limits *politeness.HostLimits
	batch  string
	obs    Observer

	hostAt []string // the chunk's URLs' hosts, by position

	mu    sync.Mutex
	hosts map[string]*hostTally
	held  map[int]bool // URLs held back at their turn, by position
}

type hostTally struct {
	inFlight int
	// blocked: the host refused the last URL that asked, and took none
	// since; the chunk's URLs of it not started wait for it.
	blocked bool
	gated   int // URLs under way waiting for it (a retry's turn)
	waited  int
	why     politeness.Wait
	ended   int
	took    time.Duration
}

// newHostBoard is the board of a chunk of tasks under a per-host rule.
func newHostBoard(limits *politeness.HostLimits, batch string, obs Observer, tasks []URLTask) *hostBoard {
	b := &hostBoard{limits: limits, batch: batch, obs: obs, hosts: map[string]*hostTally{}, held: map[int]bool{}, hostAt: make([]string, len(tasks))}
	for i, t := range tasks {
		b.hostAt[i] = hostOf(t.URL)
	}
	return b
}

// refusedAt notes that the URL at position i, not started, was held back
// for host.
func (b *hostBoard) refusedAt(host string, i int) {
	if b == nil || b.settling() {
		return
	}
	b.mu.Lock()
	fresh := !b.held[i]
	b.held[i] = true
	b.mu.Unlock()
	b.refused(host, fresh)
}

// tookAt notes that host took the URL at position i.
func (b *hostBoard) tookAt(host string, i int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	delete(b.held, i)
	b.mu.Unlock()
	b.took(host)
}

// gateTurn follows one URL under way through its host's gate.
type gateTurn struct {
	b       *hostBoard
	host    string
	waiting bool
}

// settling: the worker holds every host back a moment at its start
// (politeness.HostLimits.Settling): no host's doing, not counted as one's
// wait.
func (b *hostBoard) settling() bool { return b.limits.Settling() > 0 }

// turn begins a URL's turn at host's gate; end it (once) when it passes.
func (b *hostBoard) turn(host string) *gateTurn { return &gateTurn{b: b, host: host} }

// refused notes that the host held the URL back.
func (t *gateTurn) refused() {
	if t.b == nil || t.b.settling() {
		return
	}
	if !t.waiting {
		t.waiting = true
		t.b.gateWait(t.host, 1)
		t.b.refused(t.host, true)
		return
	}
	t.b.refused(t.host, false)
}

// took notes that the host took the URL's request.
func (t *gateTurn) took() { t.b.took(t.host) }

// end ends the URL's turn, taken or not.
func (t *gateTurn) end() {
	if t.waiting {
		t.waiting = false
		t.b.gateWait(t.host, -1)
	}
}

// tally is host's, made. Called with b.mu held.
func (b *hostBoard) tally(host string) *hostTally {
	t := b.hosts[host]
	if t == nil {
		t = &hostTally{}
		b.hosts[host] = t
	}
	return t
}

// refused notes that host held a URL back; fresh: the URL had not waited
// since its last request (it is counted once a turn).
func (b *hostBoard) refused(host string, fresh bool) {
	if b == nil {
		return
	}
	why := b.limits.Why(b.batch, host)
	b.mu.Lock()
	t := b.tally(host)
	t.blocked = true
	if why.Reason != "" {
		t.why = why
	}
	if fresh {
		t.waited++
	}
	b.mu.Unlock()
	if o, ok := b.obs.(HostObserver); ok && fresh && why.Reason != "" {
		o.HostWait(why.Reason)
	}
}

// took notes that host took a request.
func (b *hostBoard) took(host string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.tally(host).blocked = false
	b.mu.Unlock()
}

// gateWait moves the count of host's URLs under way that wait for it.
func (b *hostBoard) gateWait(host string, delta int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.tally(host).gated += delta
	b.mu.Unlock()
}

// request notes a request to host starting, and returns done, which ends
// it.
func (b *hostBoard) request(host string) (done func()) {
	began := time.Now()
	b.mu.Lock()
	b.tally(host).inFlight++
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			t := b.tally(host)
			t.inFlight--
			t.ended++
			t.took += time.Since(began)
		})
	}
}

// summary is the chunk's hosts now, at most ChunkHosts in a list; started
// tells which of its URLs are under way or done (the others are queued).
// Nil without a board.
func (b *hostBoard) summary(started func(i int) bool) []HostView {
	if b == nil {
		return nil
	}
	queued := map[string]int{}
	for i, h := range b.hostAt {
		if !started(i) {
			queued[h]++
		}
	}
	return TopHosts(b.views(queued), ChunkHosts, SlowestHosts).All()
}

// views is every host's view now; queued are the chunk's URLs not started,
// by host (those of a blocked host wait for it).
func (b *hostBoard) views(queued map[string]int) []HostView {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]HostView, 0, len(b.hosts))
	for host, t := range b.hosts {
		v := HostView{Host: Clip(host, maxHostName), InFlight: t.inFlight, Waiting: t.gated, Waited: t.waited, Requests: t.ended}
		if t.blocked {
			v.Waiting += queued[host]
		}
		if t.ended > 0 {
			v.MeanMS = (t.took / time.Duration(t.ended)).Milliseconds()
		}
		if t.why.Reason != "" {
			v.Reason = t.why.Reason
			if t.why.Rate > 0 {
				v.Rate = t.why.Rate.String()
			}
			v.MaxInFlight = t.why.MaxInFlight
			if t.why.Reason == politeness.ReasonPaused {
				v.Until = t.why.Until.UnixMilli()
			}
		}
		out = append(out, v)
	}
	return out
}

// sawRequest counts a request by its host's class and, under a rule,
// notes it on the chunk's board; done ends it there.
func (f *Fetcher) sawRequest(g *hostGate, done func()) func() {
	o, counts := observer(f.Observer).(HostObserver)
	if g == nil || g.board == nil {
		if counts {
			o.HostRequest(HostUnlimited)
		}
		return done
	}
	if counts {
		o.HostRequest(HostLimited)
	}
	end := g.board.request(g.host)
	return func() {
		end()
		done()
	}
}

// chunkBoard is the board of a chunk under a per-host rule (nil without
// one).
func (f *Fetcher) chunkBoard(req FetchChunkRequest, tasks []URLTask) *hostBoard {
	if _, ok := f.hostRule(req.Policy); !ok {
		return nil
	}
	return newHostBoard(f.hostLimits(), req.Prefix, f.Observer, tasks)
}

// hostsNote is what a chunk's heartbeat line adds of its hosts: "; 3
// URLs wait for their host: example.com (rate 2/s)", or "".
func hostsNote(hosts []HostView) string {
	line := WaitLine(TopHosts(hosts, ChunkHosts, 0), 2)
	if line == "" {
		return ""
	}
	return "; " + line
}

// HostsTracker is an Observer that also shows how many hosts a worker's
// per-host rules keep: count says it, whenever asked.
type HostsTracker interface {
	TrackHosts(count func() int)
}
