package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batchfetch/batchfetch/activities"
)

// engine runs chunks: each is fetched on the fetch task queue, then hashed
// on the CPU task queue, with at most max_in_flight fetches at once.
// Workflow coroutines share it without locks (they never run at once).
type engine struct {
	s          Settings
	prefix     string
	fetchQueue string
	staged     bool
	conc       int // URLs fetched at once within a chunk
	progress   *Progress
	results    []Result // inline batches: every URL's result
	// known holds the result of the URL that stopped a staged fail_fast
	// batch (its chunk never writes a results file): at most one. Every
	// other URL of a staged batch has its result in the blob store.
	known     []activities.IndexedResult
	failure   *Result // the URL that stopped a fail_fast batch
	failureAt int     // its index in the batch
	// unrecorded are staged chunks that failed and whose record of it
	// could not be written: the results file gives their URLs this error.
	unrecorded  []activities.FailedChunks
	onChunkDone func()

	// strict is false for batches started before chunk failures were
	// recorded (they replay the way they ran).
	strict bool
	// native: every chunk is one URL, fetched by FetchURL with Temporal's
	// retries (small batches started since that version).
	native   bool
	stopAll  func() // cancels every running chunk
	slots    int    // fetch slots held by running chunks
	running  int    // chunks being worked on
	stopping bool
	// prevParts: staging joined earlier results to the chunks, in this
	// many parts each.
	prevParts int
	scratch   scratch
	workers   fetchWorkers // who ran the last fetches
	// attrs keeps the counts in the batch's search attributes (nil in a
	// part: its parent keeps them).
	attrs *countAttrs
}

// newEngine runs urls URLs in chunks of up to chunkSize, sharing
// max_in_flight between them, about sharers chunks at once (see
// chunkConcurrency).
func newEngine(ctx workflow.Context, s Settings, prefix string, chunkSize, urls, sharers int, staged, strict bool, progress *Progress) *engine {
	// Runs started before: max_in_flight/sharers, rounded up.
	conc := max(1, min(chunkSize, (s.MaxInFlight+sharers-1)/sharers))
	if workflow.GetVersion(ctx, "share-in-flight", workflow.DefaultVersion, 1) == 1 {
		conc = chunkConcurrency(s.MaxInFlight, chunkSize, urls, sharers)
	}
	return &engine{
		scratch:    newScratch(ctx, progress),
		strict:     strict,
		s:          s,
		prefix:     prefix,
		fetchQueue: workflow.GetInfo(ctx).TaskQueueName,
		staged:     staged,
		conc:       conc,
		progress:   progress,
	}
}

// run works every chunk and returns when all are done, or stopped.
func (e *engine) run(ctx workflow.Context, chunks []chunk) {
	runCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	e.stopAll = cancel
	// Waiting goes on after a cancel: siblings confirm their cancellation.
	bg, _ := workflow.NewDisconnectedContext(ctx)
	e.scratch.remove(ctx, e.prefix)
	e.changed(ctx)
	for _, ch := range chunks {
		w := min(e.conc, ch.n)
		if err := workflow.Await(runCtx, func() bool {
			return e.stopping || (e.slots+w <= e.s.MaxInFlight && e.running < maxPending && e.scratch.room(e.running))
		}); err != nil || e.stopping {
			break
		}
		e.slots += w
		e.running++
		e.progress.InFlight += w
		workflow.Go(runCtx, func(ctx workflow.Context) {
			defer func() {
				e.running--
				if e.onChunkDone != nil {
					e.onChunkDone()
				}
				e.changed(ctx)
			}()
			e.runChunk(ctx, ch, w)
		})
	}
	_ = workflow.Await(bg, func() bool { return e.running == 0 })
	e.scratch.drain(ctx)
}

func (e *engine) runChunk(ctx workflow.Context, ch chunk, w int) {
	var fetched activities.FetchChunkResult
	var chunkOutcome, chunkMsg string // the fetch activity's own failure
	var stopped bool
	if e.native {
		fetched, stopped = e.fetchURL(ctx, ch)
	} else {
		fetched, chunkOutcome, chunkMsg, stopped = e.fetchChunk(ctx, ch, w)
	}
	e.sawWorker(fetched.Worker)
	e.sawHosts(fetched.Hosts)
	for _, it := range fetched.Items {
		noteFailed(e.progress, it.Final())
	}
	e.slots -= w
	e.progress.InFlight -= w
	if !stopped && chunkOutcome == "" && len(fetched.Items) == 0 && ch.n > 0 {
		// A fetch must hand over at least one URL: never read a chunk's
		// URLs as done when nothing said so.
		chunkOutcome, chunkMsg = OutcomeError, "the fetch returned none of its URLs"
		fetched.Items = e.failedItems(ch, chunkOutcome, chunkMsg)
	}
	if !stopped && chunkOutcome == "" && len(fetched.Items) > 0 && len(fetched.Items) < ch.n {
		// The fetch handed its first URLs over: they are hashed, and the
		// rest of the chunk is fetched meanwhile.
		var rest chunk
		ch, rest = ch.split(len(fetched.Items))
		e.startRest(ctx, rest, w)
	}
	defer e.scratch.fetched(ch, fetched)()
	if stopped {
		return
	}
	if e.s.FailFast {
		for _, it := range fetched.Items {
			if it.Outcome == "" || it.Outcome == OutcomeCanceled {
				continue
			}
			r := it.Final()
			if chunkOutcome != "" { // the chunk's activity failed, not one URL
				r = Result{URL: e.name(ch), Outcome: chunkOutcome, Error: chunkMsg}
			}
			e.stop(r, it.Index)
			if e.staged && e.strict {
				// Every URL of the chunk keeps its word in the results.
				e.record(ctx, ch, fetched.Items, OutcomeCanceled, "canceled before hashing")
				return
			}
			e.finishEarly(ch, fetched.Items)
			return
		}
	}
	hasBody := false
	for _, it := range fetched.Items {
		hasBody = hasBody || it.Outcome == ""
	}
	if !hasBody && e.strict {
		// Nothing to hash: every URL of the chunk has its final word.
		e.record(ctx, ch, fetched.Items, chunkOutcome, chunkMsg)
		return
	}

	var h *activities.Hasher
	hashCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           e.s.CPUTaskQueue,
		ActivityID:          ch.id("hash"),
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
		Summary:             e.summary("sha256", ch),
	})
	var hashed activities.HashChunkResult
	if err := workflow.ExecuteActivity(hashCtx, h.HashChunk, activities.HashChunkRequest{
		Prefix: e.prefix, Chunk: ch.index, Items: fetched.Items, Staged: e.staged, Store: fetched.Store,
		Keep: e.s.KeepBodies, Process: e.s.Process, ProcessedPrefix: e.processedPrefix(), Compare: e.s.Compare,
		First: ch.base, From: ch.from(),
	}).Get(ctx, &hashed); err != nil {
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			// What was hashed before the cancel stays hashed.
			var done activities.HashChunkResult
			ran := canceled.HasDetails() && canceled.Details(&done) == nil
			if !e.staged && ran && len(done.Results) == ch.n {
				for i, r := range done.Results {
					e.results[ch.first+i] = r
				}
				e.count(ch.n, done.OK)
				return
			}
			if e.staged && e.strict && !ran && hasFinal(fetched.Items) {
				// The hash never started, so no file holds the fetch's
				// final words (a 404 stays a 404): record them.
				e.record(ctx, ch, fetched.Items, OutcomeCanceled, "canceled before hashing")
				return
			}
			e.finishEarly(ch, fetched.Items)
			return
		}
		// The hash activity finally failed: its bodies' URLs fail with
		// its error, the others keep their fetch's word.
		msg := activities.TruncateError("hashing: " + PlainMessage(cause(err)))
		noteFailed(e.progress, Result{URL: e.name(ch), Outcome: OutcomeError, Error: msg})
		if !e.strict { // batches started before: the chunk ends here
			for i := range fetched.Items {
				if fetched.Items[i].Outcome == "" {
					fetched.Items[i].Outcome, fetched.Items[i].Error = OutcomeError, msg
				}
			}
			e.finishEarly(ch, fetched.Items)
			return
		}
		e.record(ctx, ch, fetched.Items, OutcomeError, msg)
		return
	}
	if !e.staged {
		for i, r := range hashed.Results {
			e.results[ch.first+i] = r
		}
	}
	e.count(ch.n, hashed.OK)
	if hashed.FirstFailed != nil {
		noteFailed(e.progress, *hashed.FirstFailed)
	}
	if e.s.FailFast && hashed.FirstFailed != nil {
		e.stop(*hashed.FirstFailed, -1)
	}
}

func (e *engine) processedPrefix() string {
	if e.s.Process == "" {
		return ""
	}
	return ProcessedPrefix(e.prefix)
}

// changed shows the progress in the batch's current details and search
// attributes.
func (e *engine) changed(ctx workflow.Context) {
	showDetails(ctx, *e.progress)
	e.attrs.update(ctx, *e.progress, false)
}

func (e *engine) count(n, ok int) {
	e.progress.Done += n
	e.progress.OK += ok
	e.progress.Failed += n - ok
}

// stop ends a fail_fast batch at its first final failure: r, the URL at
// index (-1 when its index is not at hand: its chunk's results are
// written).
func (e *engine) stop(r Result, index int) {
	if e.stopping {
		return
	}
	e.stopping = true
	e.failureAt = index
	if r.URL == "" && index >= 0 {
		r.URL = fmt.Sprintf("URL %d of the batch", index+1) // a staged chunk's URLs are in its file
	}
	e.failure = &r
	e.stopAll()
}

// chunkTimeout bounds one attempt of a fetch chunk: every URL may use its
// whole budget, concurrency at a time. Heartbeats catch a lost worker long
// before this.
func (e *engine) chunkTimeout(n, conc int) time.Duration {
	perURL := e.s.URLTimeout
	if perURL == 0 {
		p := activities.Policy{InitialBackoff: e.s.InitialBackoff}
		for i := 1; i <= e.s.MaxAttempts; i++ {
			perURL += e.s.AttemptTimeout + time.Minute // room for a Retry-After
			if i < e.s.MaxAttempts {
				perURL += p.Backoff(i)
			}
		}
	}
	waves := time.Duration((n + conc - 1) / conc)
	if perURL > 0 && waves > MaxDuration/perURL {
		return MaxDuration // and waves*perURL would overflow
	}
	return min(waves*perURL+5*time.Minute+e.s.paceTime(n), MaxDuration)
}

// name names a chunk's URLs in a message: the URL itself when the chunk
// has one and the workflow knows it.
func (e *engine) name(ch chunk) string {
	if ch.n == 1 && ch.urls != nil {
		return ch.urls[0].URL
	}
	return fmt.Sprintf("URLs %d to %d", ch.first+1, ch.first+ch.n)
}

func (e *engine) summary(verb string, ch chunk) string {
	if ch.n == 1 && ch.urls != nil {
		return verb + " " + activities.Redact(ch.urls[0].URL)
	}
	return fmt.Sprintf("%s URLs %d to %d", verb, ch.first+1, ch.first+ch.n)
}

// fetchChunk fetches a chunk in one activity that retries each URL
// itself. stopped means the chunk has ended (its URLs are recorded);
// otherwise chunkOutcome and chunkMsg are the activity's own failure, if
// it failed.
func (e *engine) fetchChunk(ctx workflow.Context, ch chunk, w int) (fetched activities.FetchChunkResult, chunkOutcome, chunkMsg string, stopped bool) {
	var f *activities.Fetcher
	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           e.fetchQueue,
		ActivityID:          ch.id("fetch"),
		StartToCloseTimeout: e.chunkTimeout(ch.n, w),
		HeartbeatTimeout:    heartbeatTimeout,
		WaitForCancellation: true,
		// Per-URL retries happen inside the activity; these retries are
		// for the activity itself (a worker lost mid-chunk), and resume
		// from its checkpoint.
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10},
		Summary:     e.summary(e.verb(ch), ch),
	})
	fetch := e.fetchName(ch, f.FetchChunk, activities.FetchChunkWithRequest, activities.FetchChunkObeyingRobots)
	if e.s.PerHost != nil {
		fetch = activities.FetchChunkPerHost // workers that keep the rule (and know robots and requests)
	}
	err := workflow.ExecuteActivity(fetchCtx, fetch, activities.FetchChunkRequest{
		Prefix: e.prefix, Chunk: ch.index, URLs: ch.urls, First: ch.base, Concurrency: w, PrevParts: e.prevParts, Keep: e.s.KeepBodies,
		From: ch.from(), Budget: e.scratch.budget(ctx), Request: e.s.Request, Policy: e.policy(),
	}).Get(ctx, &fetched)
	if err != nil {
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			// The batch stopped: a staged chunk recorded what it had done
			// in the blob store, an inline one sends it back.
			if !canceled.HasDetails() || canceled.Details(&fetched) != nil || len(fetched.Items) != ch.n {
				fetched.Items = e.failedItems(ch, OutcomeCanceled, "canceled")
			}
			e.finishEarly(ch, fetched.Items)
			return fetched, "", "", true
		}
		outcome, msg := Classify(err)
		if !e.strict { // batches started before: the chunk ends here
			e.finishEarly(ch, e.failedItems(ch, outcome, msg))
			return fetched, "", "", true
		}
		// The fetch activity finally failed. URLs its last heartbeat had
		// finished keep their word (and their bodies get hashed); every
		// other URL fails with the activity's error.
		chunkOutcome, chunkMsg = outcome, msg
		fetched.Items = e.failedItems(ch, outcome, msg)
		var timeout *temporal.TimeoutError
		var cp activities.FetchCheckpoint
		if errors.As(err, &timeout) && timeout.HasLastHeartbeatDetails() && timeout.LastHeartbeatDetails(&cp) == nil {
			for _, d := range cp.Done {
				if i := d.Index - ch.first; i >= 0 && i < ch.n {
					fetched.Items[i] = d
				}
			}
		}
		workflow.GetLogger(ctx).Warn("fetch chunk failed", "chunk", ch.index, "error", msg)
	}
	return fetched, chunkOutcome, chunkMsg, false
}
