// Package activities holds batchfetch's Temporal activities: Fetcher (the
// I/O step, on the fetch task queue) and Hasher (the CPU step, on the CPU
// task queue). Both stream bodies through a blobstore.Store, so a body
// never travels through workflow history.
//
// An activity handles a chunk of a batch's URLs (one URL for small
// batches, up to a hundred for large ones) and applies the batch's per-URL
// timeouts and retry policy itself, so each URL keeps its own attempts and
// outcome whatever the chunk size. It heartbeats a checkpoint: a retried
// chunk (after a worker crash) resumes where it stopped.
//
// Register them once per worker, built around shared dependencies:
//
//	f := &activities.Fetcher{Client: activities.NewHTTPClient(activities.ClientConfig{}), Store: store}
//	activities.RegisterFetcher(w, f)
package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/tracing"
	"github.com/batchfetch/batchfetch/politeness"
)

// DefaultMaxBodyBytes caps one body unless Fetcher.MaxBodyBytes says otherwise.
const DefaultMaxBodyBytes = 1 << 30

// DefaultHeartbeatEvery is how often a running activity heartbeats.
const DefaultHeartbeatEvery = time.Second

// Fetcher is the fetch activity. One Fetcher (and one http.Client) serves
// every fetch a worker runs.
type Fetcher struct {
	Client *http.Client
	Store  blobstore.Store
	// MaxBodyBytes caps a body; a longer one fails its URL. Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxConcurrent caps the requests this worker has open at once, over
	// every chunk it runs. 0: no cap beyond each chunk's concurrency.
	MaxConcurrent int
	// Identity is the worker's identity on its task queue; with
	// MaxConcurrent, every fetch result names the worker and its cap, so
	// a batch can tell when its workers have fewer slots than it asks.
	Identity string
	// HeartbeatEvery defaults to DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
	// RoomWait is how long a URL waits in all for room on a full blob
	// disk before it fails (default DefaultRoomWait).
	RoomWait time.Duration
	// Backlog bounds the bytes a batch may have fetched and not yet
	// hashed: told to the workflow with every fetch (default
	// DefaultBacklog).
	Backlog int64
	// Observer hears of every fetch (metrics). Optional.
	Observer Observer
	// Secrets are the worker's secrets, which header values may name
	// (nil: none).
	Secrets Secrets
	// StoreID is Store's identity (blobstore.ID), carried in every fetch
	// result so that a hash worker on another store refuses the work;
	// StoreLocation says where Store is, for messages.
	StoreID, StoreLocation string
	// Robots holds the hosts' robots.txt for batches that obey it (nil:
	// a cache with the defaults, made on first use).
	Robots *RobotsCache
	// Limits keeps every chunk's requests to each host within its
	// batch's per_host rule (nil: one sharing with no other worker, made
	// on first use); PerHost is the worker's default rule, under which a
	// batch's own fields win.
	Limits  *politeness.HostLimits
	PerHost politeness.Rule

	robotsOnce sync.Once
	limitsOnce sync.Once
	pausesOnce sync.Once
	pauses     *hostPauses

	slotsOnce sync.Once
	slots     chan struct{}
	held      atomic.Int64 // bytes the running chunk fetches hold (handoff)
	claimed   atomic.Int64 // room claimed by bodies being written (haveRoom)
}

// worker is what a fetch result says of the worker that ran it.
func (f *Fetcher) worker() *FetchWorker {
	if f.MaxConcurrent <= 0 {
		return nil
	}
	return &FetchWorker{Identity: f.Identity, FetchSlots: f.MaxConcurrent}
}

// failure is why one attempt did not produce a body.
type failure struct {
	outcome   string
	status    int
	retryable bool
	delay     time.Duration // server's Retry-After
	msg       string
	// noSpace: the blob store had no room for the body (need bytes, as
	// far as known); the attempt does not count, the URL waits for room.
	noSpace bool
	need    int64
}

func (f *Fetcher) acquire(ctx context.Context) (release func(), err error) {
	f.slotsOnce.Do(func() {
		if f.MaxConcurrent > 0 {
			f.slots = make(chan struct{}, f.MaxConcurrent)
		}
	})
	obs := observer(f.Observer)
	if f.slots == nil {
		obs.SlotsInUse("fetch", 1)
		return func() { obs.SlotsInUse("fetch", -1) }, nil
	}
	select {
	case f.slots <- struct{}{}:
		obs.SlotsInUse("fetch", 1)
		return func() { <-f.slots; obs.SlotsInUse("fetch", -1) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// leave, when set, tells whether a URL whose first attempt met a full
// blob disk is left over to the chunk's next fetch instead of waiting.
// gate, when set, paces its requests to its host's rule.
func (f *Fetcher) fetchURL(ctx context.Context, t URLTask, work string, p Policy, st *urlState, keep bool, leave func() bool, gate *hostGate) (out Fetched) {
	defer gate.drop()
	cond := f.condition(ctx, t.Prev, keep)
	// The URL's clocks run from its first attempt, in an earlier attempt
	// of the chunk if there was one (its checkpoint says when).
	st.mu.Lock()
	if st.first.IsZero() {
		st.first = time.Now()
	}
	start, retryAt, made := st.first, st.retryAt, st.attempts
	st.mu.Unlock()
	out = Fetched{Index: t.Index, URL: t.URL, Prev: t.Prev}
	if !t.R.Retriable() {
		p.MaxAttempts = 1
		if made > 0 { // cut off with an earlier attempt of the chunk
			out.Outcome, out.Error = OutcomeError, unsafeCutOff(t.R)
			return out
		}
	}
	defer func() {
		out.ElapsedMS = time.Since(start).Milliseconds()
		st.mu.Lock()
		out.Attempts = st.attempts
		st.mu.Unlock()
		if out.Outcome != "" && out.Outcome != OutcomeCanceled {
			observer(f.Observer).Fetched(0, time.Since(start)) // a fetch that ended without a body
		}
	}()
	urlCtx := ctx
	if p.URLTimeout > 0 {
		var cancel context.CancelFunc
		urlCtx, cancel = context.WithDeadline(ctx, start.Add(p.URLTimeout))
		defer cancel()
		if gate != nil {
			gate.deadline = start.Add(p.URLTimeout)
		}
	}
	if wait := time.Until(retryAt); wait > 0 {
		// A wait (a Retry-After) an earlier attempt of the chunk began.
		gate.drop()
		select {
		case <-time.After(wait):
		case <-urlCtx.Done():
			return f.ended(ctx, out, &failure{msg: st.lastFailure()})
		}
	}
	defer func() {
		// A URL that ended without a body keeps nothing for later, unless
		// it was cut off (not canceled by its batch): the chunk resumes
		// from its checkpoint, which may name the kept part.
		if kept := st.get(); out.Blob == "" && kept.Blob != "" && (out.Outcome != OutcomeCanceled || dropKept(ctx)) {
			if r, ok := f.Store.(blobstore.Resumer); ok {
				_ = r.Discard(context.WithoutCancel(ctx), kept.Blob)
			}
			st.set(Resume{})
		}
	}()
	var roomWaited time.Duration // waiting for room on a full blob disk
	for {
		if refused, err := f.robotsRefusal(urlCtx, t.URL, t.R, p); err != nil {
			return f.ended(ctx, out, nil)
		} else if refused != nil {
			return finish(out, refused)
		}
		f.crawlDelay(gate, t.URL, t.R, p)
		hostDone, err := gate.start(urlCtx)
		if late := (*hostTooLate)(nil); errors.As(err, &late) {
			return finish(out, late.fail)
		} else if err != nil {
			return f.ended(ctx, out, nil)
		}
		release, err := f.acquire(urlCtx)
		if err != nil {
			hostDone()
			return f.ended(ctx, out, nil)
		}
		hostDone = f.sawRequest(gate, hostDone)
		st.mu.Lock()
		st.attempts++
		attempts := st.attempts
		st.mu.Unlock()
		attemptCtx, attemptTimedOut, attemptDone := attemptContext(tracing.WithAttempt(urlCtx, t.Index, attempts), p.AttemptTimeout)
		status, body, fail := f.fetchOnce(attemptCtx, t.URL, work, t.Index, st, cond, t.R)
		timedOut := attemptTimedOut()
		attemptDone()
		release()
		gate.paused(fail, p.Backoff(attempts)) // before the host's place is free for another URL
		hostDone()
		out.Status = status
		if fail == nil {
			out.Blob, out.Off, out.Size, out.CRC32C, out.Meta = body.key, body.off, body.size, &body.crc, body.meta
			if body.notModified {
				// No body: the hash step carries the earlier one's word.
				out.NotModified, out.Off, out.CRC32C = true, nil, nil
			}
			if body.noBody {
				out.NoBody, out.Off, out.CRC32C = true, nil, nil
			}
			observer(f.Observer).Fetched(out.Size, time.Since(start))
			return out
		}
		if ctx.Err() != nil || urlCtx.Err() != nil {
			return f.ended(ctx, out, fail)
		}
		if fail.noSpace && !t.R.Retriable() {
			return finish(out, unsafeNoSpace(t.R, fail))
		}
		if fail.noSpace && attempts == 1 && leave != nil && leave() {
			st.mu.Lock()
			st.attempts-- // the next fetch makes it again
			st.mu.Unlock()
			out.Outcome = outcomeLeft
			return out
		}
		if fail.noSpace {
			st.waiting(time.Now(), "no space left on device: waiting for room on the blob disk")
			final := f.awaitRoom(urlCtx, fail, &roomWaited)
			st.waiting(time.Time{}, "")
			switch {
			case urlCtx.Err() != nil:
				return f.ended(ctx, out, fail)
			case final != nil:
				return finish(out, final)
			}
			// Not the URL's fault: the attempt does not count.
			st.mu.Lock()
			st.attempts--
			st.mu.Unlock()
			continue
		}
		// Only the URL's own budget bounds the wait. A wait that outlasts
		// this chunk attempt goes on in the next one, from the checkpoint.
		var deadline time.Time
		if p.URLTimeout > 0 {
			deadline = start.Add(p.URLTimeout)
		}
		fail, retry, delay := next(fail, timedOut, attempts, p, deadline)
		if !retry {
			return finish(out, fail)
		}
		st.waiting(time.Now().Add(delay), fail.msg) // checkpointed: a retried chunk honours it
		select {
		case <-time.After(delay):
		case <-urlCtx.Done():
			return f.ended(ctx, out, fail)
		}
		st.waiting(time.Time{}, "")
	}
}

// ended describes a URL stopped by its context: the chunk was canceled, or
// the URL's budget (url_timeout) ran out.
func (f *Fetcher) ended(ctx context.Context, out Fetched, last *failure) Fetched {
	if ctx.Err() != nil {
		out.Outcome, out.Error = OutcomeCanceled, "canceled"
		return out
	}
	out.Outcome, out.Error = OutcomeTimeout, "URL timed out (url_timeout)"
	if last != nil && last.msg != "" && !strings.Contains(last.msg, context.DeadlineExceeded.Error()) {
		out.Error += " after: " + last.msg // what the attempt cut short had met
	}
	return out
}

// next decides what follows a failed attempt (the attempts-th), the same
// way whether the retries run in a chunk or in Temporal: a timed-out
// attempt is a timeout; no retry for a failure that is not retryable, after
// max_attempts, or when the wait (the server's Retry-After, else the
// doubling backoff) would end past the deadline (the URL's url_timeout). A Retry-After
// that does not fit is said so in the error, never silently cut short.
func next(fail *failure, timedOut bool, attempts int, p Policy, deadline time.Time) (last *failure, retry bool, delay time.Duration) {
	if timedOut {
		fail = &failure{outcome: OutcomeTimeout, retryable: true, msg: "attempt timed out (attempt_timeout)"}
	}
	if !fail.retryable || attempts >= max(p.MaxAttempts, 1) {
		return fail, false, 0
	}
	delay = p.Backoff(attempts)
	if fail.delay > 0 {
		delay = fail.delay
	}
	if !deadline.IsZero() && time.Now().Add(delay).After(deadline) {
		if fail.delay > 0 {
			f := *fail
			f.msg += fmt.Sprintf("; its Retry-After (%s) ends past the URL's url_timeout", fail.delay)
			fail = &f
		}
		return fail, false, 0 // no budget left for another attempt
	}
	return fail, true, delay
}

func finish(out Fetched, fail *failure) Fetched {
	out.Outcome, out.Status, out.Error = fail.outcome, fail.status, TruncateError(fail.msg)
	return out
}

// condition is what a URL's request may be conditional on: its earlier
// result. A kept body that a 304 would carry forward is marked used now
// (blobstore.Touch), so that gc and lifecycle rules go by its last use.
// One that is gone (expired, never kept) or cannot be marked is not
// carried: with keep_bodies the body is asked for whole (a 304 would
// leave the URL without one); without, the request stays conditional
// and prev, this URL's own, forgets the key, so a 304 names no body.
func (f *Fetcher) condition(ctx context.Context, prev *Prev, keep bool) *Prev {
	if prev == nil || (prev.BodyKey == "" && !keep) {
		return prev
	}
	if prev.BodyKey != "" && blobstore.Touch(ctx, f.Store, prev.BodyKey) == nil {
		return prev
	}
	if keep {
		return nil
	}
	prev.BodyKey = ""
	return prev
}
