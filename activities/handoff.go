package activities

import "sync"

// outcomeLeft marks, inside a chunk's fetch, a URL left to the next fetch
// of the chunk: it met a full blob disk on its first attempt while the
// fetch held bodies whose hash will make room.
const outcomeLeft = "left"

// handoff decides when a chunk's fetch stops taking URLs and hands what
// it has fetched to the hash step, leaving the rest of the chunk to a
// fetch of its own (the workflow starts it): when the bodies it holds
// reach its budget, when the worker's running fetches hold the worker's
// backlog bound, or when the blob disk is full. A fetch that holds
// nothing never stops, so every fetch makes progress. The URLs it hands
// over are the ones before the cut; it starts none after it.
type handoff struct {
	f      *Fetcher
	budget int64 // 0: hand nothing over early (requests of earlier versions)
	mu     sync.Mutex
	held   int64 // bytes of the bodies this fetch stored
	cut    int   // position of the first URL left over
	// firstBody is the position of the first URL whose body this fetch
	// stored: a cut after it hands over at least that body.
	firstBody int
	// lastOnce is the position of the last URL started whose request may
	// not be made twice (-1: none): a cut is never at or before it, which
	// would leave it to the next fetch to send again.
	lastOnce int
}

// hold counts bytes the worker's running fetches hold, for the handoff
// and the metrics.
func (f *Fetcher) hold(n int64) {
	f.held.Add(n)
	if o, ok := f.Observer.(HeldObserver); ok && n != 0 {
		o.Held(n)
	}
}

func newHandoff(f *Fetcher, budget int64, n int) *handoff {
	return &handoff{f: f, budget: budget, cut: n, firstBody: n, lastOnce: -1}
}

// stopBefore tells whether the fetch stops before the URL at pos: the
// bodies it holds are enough for one hash, or a full disk cut it short.
// It does not stop where the cut would hand over no URL, or would leave
// a started request that may not be made twice to the next fetch.
func (h *handoff) stopBefore(pos int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if pos >= h.cut {
		return true
	}
	if h.full() && pos > 0 && pos > h.lastOnce {
		h.cut = pos
		return true
	}
	return false
}

// full tells whether the bodies held are enough for one hash (or the
// worker's backlog is reached). Called with h.mu held.
func (h *handoff) full() bool {
	if h.budget <= 0 || h.held == 0 {
		return false
	}
	return h.held >= h.budget || h.f.held.Load() >= h.f.backlog()
}

// waitsForFront tells whether the fetch, which would stop had its cut
// somewhere to go (stopBefore), starts only the first URL not started:
// it starts no more URLs past a cut that is yet to come.
func (h *handoff) waitsForFront() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full()
}

// earlyCut tells whether the fetch may hand over before its end.
func (h *handoff) earlyCut() bool { return h.budget > 0 }

// startedOnce notes that the URL at pos, whose request may not be made
// twice, is starting: no cut comes at or before it.
func (h *handoff) startedOnce(pos int) {
	h.mu.Lock()
	h.lastOnce = max(h.lastOnce, pos)
	h.mu.Unlock()
}

// leaveOnFull tells whether the URL at pos, which met a full blob disk on
// its first attempt, is left to the next fetch instead of waiting for
// room here: yes while this fetch holds a body of a URL before it (the
// cut hands that body to the hash, which frees room) and no request past
// it that may not be made twice has started. Bodies of later URLs do not
// count: a cut before them hands them nothing.
func (h *handoff) leaveOnFull(pos int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.budget <= 0 || h.firstBody >= pos || h.lastOnce >= pos {
		return false
	}
	h.cut = min(h.cut, pos)
	return true
}

// stored counts a body the fetch stored, for the URL at pos.
func (h *handoff) stored(pos int, it Fetched) {
	if it.Outcome != "" || it.NotModified || it.Blob == "" {
		return
	}
	h.mu.Lock()
	h.held += it.Size
	h.firstBody = min(h.firstBody, pos)
	h.mu.Unlock()
	h.f.hold(it.Size)
}

// leftFrom is the position of the first URL left to the next fetch so
// far (the chunk's length while none is).
func (h *handoff) leftFrom() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cut
}

// end is the position of the first URL left over (the number of URLs
// handed to the hash), and gives the worker's count back what this fetch
// held: the batch's backlog counts it from here.
func (h *handoff) end() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.f.hold(-h.held)
	h.held = 0
	return h.cut
}
