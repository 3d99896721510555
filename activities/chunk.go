package activities

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// FetchCheckpoint is the fetch activity's heartbeat: the URLs done so far,
// and for the others the attempts made and how far their bodies got, so a
// retried chunk resumes (a large body from its last byte). The workflow
// reads it from a timed-out chunk's last heartbeat, so the URLs done by
// then keep their results.
type FetchCheckpoint struct {
	// Summary says in a line where the chunk is, for people reading the
	// pending activity in the Web UI.
	Summary string           `json:"summary,omitempty"`
	Done    []Fetched        `json:"done"`
	Running map[int]inFlight `json:"running,omitempty"`
	// Hosts are the hosts the chunk's URLs are busy with or wait for
	// under a per_host rule (a few of each, see HostsView).
	Hosts []HostView `json:"hosts,omitempty"`
}

type inFlight struct {
	Attempts int    `json:"attempts"`
	Resume   Resume `json:"resume,omitempty"`
	// First is when the URL's first attempt started (Unix ms): its
	// url_timeout and elapsed time run from there, across chunk attempts.
	First int64 `json:"first,omitempty"`
	// RetryAt is when its next attempt may start (Unix ms), while it
	// waits out a backoff or the server's Retry-After; Last is why.
	RetryAt int64  `json:"retry_at,omitempty"`
	Last    string `json:"last,omitempty"`
}

// FetchChunk fetches a chunk of URLs, Concurrency at a time. Every URL
// ends with a blob to hash or a final outcome. In fail_fast mode the first
// URL that finally fails cancels the rest of the chunk.
func (f *Fetcher) FetchChunk(ctx context.Context, req FetchChunkRequest) (*FetchChunkResult, error) {
	ctx = withRunCheck(ctx)
	tasks := req.URLs
	if len(tasks) == 0 {
		var err error
		if tasks, err = f.readURLs(ctx, URLsKey(req.Prefix, req.Chunk), req.First); err != nil {
			return nil, err
		}
		if err := readPrev(ctx, f.Store, req.Prefix, req.Chunk, req.PrevParts, tasks); err != nil {
			return nil, err
		}
		if skip := req.From - req.First; skip > 0 {
			tasks = tasks[min(skip, len(tasks)):]
		}
	}
	tasks = withRequests(tasks, req.Request)
	items := make([]Fetched, len(tasks))
	done := make([]bool, len(tasks))
	states := make([]*urlState, len(tasks))
	pos := make(map[int]int, len(tasks))
	for i, t := range tasks {
		pos[t.Index] = i
		states[i] = &urlState{}
	}
	var cp FetchCheckpoint
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &cp) == nil {
		for _, d := range cp.Done {
			if i, ok := pos[d.Index]; ok {
				d.URL = tasks[i].URL // a staged checkpoint leaves it out
				items[i], done[i] = d, true
			}
		}
		for idx, r := range cp.Running {
			if i, ok := pos[idx]; ok {
				st := states[i]
				st.attempts, st.resume = r.Attempts, r.Resume
				st.first, st.retryAt, st.last = fromUnixMilli(r.First), fromUnixMilli(r.RetryAt), r.Last
			}
		}
	}

	if activity.GetInfo(ctx).Attempt > 1 || activity.HasHeartbeatDetails(ctx) {
		// A chunk attempt after one that was lost: a POST that may not
		// be retried and is not done may have reached the server after
		// the last checkpoint. It is not made again.
		for i, t := range tasks {
			if !done[i] && !t.R.Retriable() && states[i].attempts == 0 {
				states[i].attempts = 1
			}
		}
	}
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	// Bodies go to the work directory of this fetch's URLs until their
	// hash is recorded.
	work := WorkPrefix(req.Prefix, max(req.First, req.From))
	runCtx, pack := withPack(runCtx, f.Store, work)

	var mu sync.Mutex
	running := map[int]int{} // URL index -> position, for URLs under way
	ho := newHandoff(f, req.Budget, len(tasks))
	board := f.chunkBoard(req, tasks)
	checkpoint := func() FetchCheckpoint {
		var synced map[string]int64
		if pack != nil {
			synced = pack.sync() // before listing: only bodies on disk count as done
		}
		cut := ho.leftFrom()
		mu.Lock()
		defer mu.Unlock()
		c := FetchCheckpoint{Running: map[int]inFlight{}}
		for i, ok := range done {
			if ok && i >= cut {
				continue // past a cut: the next fetch's, which counts it
			}
			if ok {
				it := items[i]
				if unsynced(it, synced) {
					continue // fetched again if this attempt is lost
				}
				if it.Outcome == OutcomeCanceled {
					continue // stopped with this attempt, not done: the next one fetches it
				}
				if len(req.URLs) == 0 {
					it.URL = "" // in the chunk's file
				}
				c.Done = append(c.Done, it)
			}
		}
		for idx, i := range running {
			c.Running[idx] = states[i].checkpoint()
		}
		c.Summary = summarize(len(c.Done), len(tasks), c.Running, tasks, pos, req.Policy)
		c.Hosts = board.summary(func(i int) bool { _, under := running[tasks[i].Index]; return done[i] || under })
		c.Summary += hostsNote(c.Hosts)
		return c
	}
	stopHB := heartbeat(ctx, f.heartbeatEvery(), func() any { return checkpoint() })
	defer stopHB()

	run := &chunkRun{f: f, ctx: runCtx, stopAll: stopAll, req: req, tasks: tasks, work: work, ho: ho,
		sem: make(chan struct{}, max(req.Concurrency, 1)), mu: &mu, items: items, done: done, states: states, running: running, board: board}
	if rule, ok := f.hostRule(req.Policy); ok {
		run.byHost(rule)
	} else {
		run.inOrder()
	}
	run.wg.Wait()
	cut := ho.end()
	// cancelUndone marks the URLs never started (left over) as canceled.
	cancelUndone := func() {
		for i, t := range tasks {
			if !done[i] {
				items[i] = Fetched{Index: t.Index, URL: t.URL, Outcome: OutcomeCanceled, Error: "canceled", Attempts: states[i].attempts}
			}
		}
	}
	if pack != nil {
		// Before the result: a hash may read it from another machine.
		if err := pack.close(); err != nil {
			stopHB()
			return nil, fmt.Errorf("the chunk's small bodies may be incomplete, retrying from the last checkpoint: %w", err)
		}
	}
	select {
	case <-activity.GetWorkerStopChannel(ctx):
		// The worker is shutting down: fail this attempt so the chunk is
		// retried on another worker, from the last checkpoint.
		return nil, temporal.NewApplicationError("worker stopped mid-chunk", WorkerStoppingType)
	default:
	}
	if ctx.Err() != nil {
		if !cancelRequested(ctx) {
			// The server gave up on this attempt (its worker was frozen
			// or cut off): another attempt owns the chunk now.
			return nil, ctx.Err()
		}
		// Canceled: report what was done, so the batch's result is true;
		// a staged chunk's results go to the blob store.
		cancelUndone()
		if len(req.URLs) == 0 {
			if err := writeStopped(ctx, f.Store, req.Prefix, req.Chunk, piece(req.First, req.From), items); err != nil {
				activity.GetLogger(ctx).Warn("recording a canceled chunk's results failed", "chunk", req.Chunk, "error", err)
			}
		}
		return nil, temporal.NewCanceledError(FetchChunkResult{Items: lean(req, items), Store: f.StoreID})
	}
	if runCtx.Err() != nil {
		// A URL finally failed in fail_fast mode and stopped the others,
		// wherever a cut was: the whole chunk comes back, so the batch
		// sees the failure and stops on it.
		cancelUndone()
		cut = len(tasks)
	}
	items = items[:cut] // the rest is the next fetch's
	activity.GetLogger(ctx).Debug("chunk fetched", "chunk", req.Chunk, "urls", len(items))
	for i := range items {
		if items[i].Outcome != "" { // final: no hash step will count it
			observer(f.Observer).URLDone(items[i].Outcome)
		}
	}
	return &FetchChunkResult{Items: lean(req, items), Store: f.StoreID, Backlog: f.backlog(), Worker: f.worker(), Hosts: board.summary(func(int) bool { return true })}, nil
}

// namedFailures is how many of a staged chunk's failed URLs its fetch
// result names.
const namedFailures = 3

// lean drops the URLs of a staged chunk's items (they are in its file,
// and a hundred long URLs would make the payload large) but those of its
// first namedFailures URLs that failed: a fail_fast batch names the
// first, and the Web UI's details show the batch's last failures.
func lean(req FetchChunkRequest, items []Fetched) []Fetched {
	if len(req.URLs) > 0 {
		return items
	}
	out := make([]Fetched, len(items))
	named := 0
	for i, it := range items {
		if named == namedFailures || it.Outcome == "" || it.Outcome == OutcomeCanceled {
			it.URL = ""
		} else {
			named++
		}
		out[i] = it
	}
	return out
}

// describeStore says which store this worker has, for messages.
func (f *Fetcher) describeStore() string {
	if f.StoreID == "" {
		return ""
	}
	return fmt.Sprintf(" this worker uses (%s, identity %s): whoever wrote it must use the workers' --blob-dir or --blob-url", f.StoreLocation, f.StoreID)
}

func (f *Fetcher) heartbeatEvery() time.Duration {
	if f.HeartbeatEvery > 0 {
		return f.HeartbeatEvery
	}
	return DefaultHeartbeatEvery
}

// drain reads a little of an error body so the connection can be reused.
func drain(body io.Reader) {
	_, _ = io.CopyN(io.Discard, body, 64<<10)
}

func unwrapURL(err error) string {
	s := err.Error()
	// *url.Error reads `Get "http://...": cause`; keep the cause.
	if i := strings.Index(s, `": `); i >= 0 && strings.HasPrefix(s, "Get ") {
		return s[i+3:]
	}
	return s
}
