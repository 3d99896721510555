package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
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
	tasks := req.URLs
	if len(tasks) == 0 {
		var err error
		if tasks, err = f.readURLs(ctx, URLsKey(req.Prefix, req.Chunk), req.First); err != nil {
			return nil, err
		}
		if err := readPrev(ctx, f.Store, req.Prefix, req.Chunk, req.PrevParts, tasks); err != nil {
			return nil, err
		}
	}
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

	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	runCtx, pack := withPack(runCtx, f.Store, req.Prefix, req.Chunk)

	var mu sync.Mutex
	running := map[int]int{} // URL index -> position, for URLs under way
	checkpoint := func() FetchCheckpoint {
		var synced map[string]int64
		if pack != nil {
			synced = pack.sync() // before listing: only bodies on disk count as done
		}
		mu.Lock()
		defer mu.Unlock()
		c := FetchCheckpoint{Running: map[int]inFlight{}}
		for i, ok := range done {
			if ok {
				it := items[i]
				if unsynced(it, synced) {
					continue // fetched again if this attempt is lost
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
		return c
	}
	stopHB := heartbeat(ctx, f.heartbeatEvery(), func() any { return checkpoint() })
	defer stopHB()

	conc := max(req.Concurrency, 1)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, t := range tasks {
		if done[i] {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-runCtx.Done():
		}
		if runCtx.Err() != nil {
			mu.Lock()
			items[i] = Fetched{Index: t.Index, URL: t.URL, Outcome: OutcomeCanceled, Error: "canceled", Attempts: states[i].attempts}
			done[i] = true
			mu.Unlock()
			continue
		}
		mu.Lock()
		running[t.Index] = i
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := f.fetchURL(runCtx, t, req.Prefix, req.Policy, states[i], req.Keep)
			mu.Lock()
			items[i], done[i] = r, true
			delete(running, t.Index)
			mu.Unlock()
			if req.Policy.FailFast && r.Outcome != "" && r.Outcome != OutcomeCanceled {
				stopAll()
			}
		}()
	}
	wg.Wait()
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
		if len(req.URLs) == 0 {
			if err := writeStopped(ctx, f.Store, req.Prefix, req.Chunk, items); err != nil {
				activity.GetLogger(ctx).Warn("recording a canceled chunk's results failed", "chunk", req.Chunk, "error", err)
			}
		}
		return nil, temporal.NewCanceledError(FetchChunkResult{Items: lean(req, items), Store: f.StoreID})
	}
	activity.GetLogger(ctx).Debug("chunk fetched", "chunk", req.Chunk, "urls", len(items))
	for i := range items {
		if items[i].Outcome != "" { // final: no hash step will count it
			observer(f.Observer).URLDone(items[i].Outcome)
		}
	}
	return &FetchChunkResult{Items: lean(req, items), Store: f.StoreID, Worker: f.worker()}, nil
}

// lean drops the URLs of a staged chunk's items (they are in its file,
// and a hundred long URLs would make the payload large) but that of the
// first URL that failed, which a fail_fast batch names.
func lean(req FetchChunkRequest, items []Fetched) []Fetched {
	if len(req.URLs) > 0 {
		return items
	}
	out := make([]Fetched, len(items))
	named := false
	for i, it := range items {
		if named || it.Outcome == "" || it.Outcome == OutcomeCanceled {
			it.URL = ""
		} else {
			named = true
		}
		out[i] = it
	}
	return out
}

func (f *Fetcher) readURLs(ctx context.Context, key string, first int) ([]URLTask, error) {
	return readURLs(ctx, f.Store, key, first)
}

// readPrev gives tasks, a staged chunk's URLs, what the earlier results
// staging joined to them said (parts files of IndexedPrev).
func readPrev(ctx context.Context, store blobstore.Store, prefix string, chunk, parts int, tasks []URLTask) error {
	if len(tasks) == 0 {
		return nil
	}
	first := tasks[0].Index
	for n := range parts {
		r, err := store.Open(ctx, PrevKey(prefix, chunk, n))
		if errors.Is(err, blobstore.ErrNotFound) {
			continue // no earlier result for this chunk in that part
		}
		if err != nil {
			return fmt.Errorf("reading the chunk's earlier results: %w", err)
		}
		dec := json.NewDecoder(bufio.NewReader(r))
		for {
			var p IndexedPrev
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				r.Close()
				return fmt.Errorf("reading the chunk's earlier results: %w", err)
			}
			if i := p.Index - first; i >= 0 && i < len(tasks) && tasks[i].URL == p.URL {
				prev := p.Prev
				tasks[i].Prev = &prev
			}
		}
		r.Close()
	}
	return nil
}

// readURLs reads a staged chunk's URLs, numbered from first.
func readURLs(ctx context.Context, store blobstore.Store, key string, first int) ([]URLTask, error) {
	r, err := store.Open(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("reading the chunk's URLs: %w", err)
	}
	defer r.Close()
	var tasks []URLTask
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxURLLength+1024)
	for sc.Scan() {
		tasks = append(tasks, URLTask{Index: first + len(tasks), URL: sc.Text()})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the chunk's URLs: %w", err)
	}
	return tasks, nil
}

// RemoveBlobs deletes everything under prefix: a batch's files when it ends.
// It heartbeats while it works: a large batch's files take minutes to
// delete on some disks, longer than the heartbeat timeout.
func (f *Fetcher) RemoveBlobs(ctx context.Context, prefix string) error {
	stop := heartbeat(ctx, f.heartbeatEvery(), func() any { return nil })
	defer stop()
	if err := f.Store.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("removing blobs under %s: %w", prefix, err)
	}
	return nil
}

// RemoveInput deletes one input file a batch owned (its urls_file or
// previous_file): exactly that blob, never a directory or a prefix, so a
// key that names one (urls_file "results") removes nothing.
func (f *Fetcher) RemoveInput(ctx context.Context, key string) error {
	r, ok := f.Store.(blobstore.Remover)
	if !ok {
		return temporal.NewNonRetryableApplicationError("this blob store cannot remove one blob", "Unsupported", nil)
	}
	err := r.Remove(ctx, key)
	if errors.Is(err, blobstore.ErrNotOneBlob) {
		return temporal.NewNonRetryableApplicationError(err.Error(), "NotOneBlob", nil)
	}
	return err
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

// heartbeat records details() every interval until stop is called (once
// or more). A
// heartbeat is also how a cancel request reaches a running activity (its
// ctx is canceled).
func heartbeat(ctx context.Context, every time.Duration, details func() any) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				// Not with ctx itself: a heartbeat encoded just as ctx is
				// canceled (the worker stopping) fails to encode, and the
				// SDK then fails the attempt with "context canceled",
				// dropping what the activity returns.
				activity.RecordHeartbeat(context.WithoutCancel(ctx), details())
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

// summarize says in a line where a chunk is: "37/100 done; retrying
// https://… (HTTP 503), attempt 2/3 in 2s".
func summarize(done, total int, running map[int]inFlight, tasks []URLTask, pos map[int]int, p Policy) string {
	s := fmt.Sprintf("%d/%d done", done, total)
	waiting := -1
	for idx, r := range running {
		if r.RetryAt != 0 && (waiting < 0 || idx < waiting) {
			waiting = idx
		}
	}
	if waiting >= 0 {
		r := running[waiting]
		in := time.Until(time.UnixMilli(r.RetryAt)).Round(time.Second)
		s += fmt.Sprintf("; %d running; retrying %s (%s), attempt %d/%d in %s", len(running), Redact(tasks[pos[waiting]].URL), r.Last, r.Attempts+1, max(p.MaxAttempts, 1), max(in, 0))
	} else if len(running) > 0 {
		s += fmt.Sprintf("; %d running", len(running))
	}
	return s
}
