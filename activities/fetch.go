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
//	w.RegisterActivity(f)
package activities

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
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
	// HeartbeatEvery defaults to DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration

	slotsOnce sync.Once
	slots     chan struct{}
}

// failure is why one attempt did not produce a body.
type failure struct {
	outcome   string
	status    int
	retryable bool
	delay     time.Duration // server's Retry-After
	msg       string
}

func (f *Fetcher) acquire(ctx context.Context) (release func(), err error) {
	f.slotsOnce.Do(func() {
		if f.MaxConcurrent > 0 {
			f.slots = make(chan struct{}, f.MaxConcurrent)
		}
	})
	if f.slots == nil {
		return func() {}, nil
	}
	select {
	case f.slots <- struct{}{}:
		return func() { <-f.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetchOnce makes one attempt: GET url and stream the body into blob.
// read counts the bytes as they arrive.
func (f *Fetcher) fetchOnce(ctx context.Context, url, blob string, read *atomic.Int64) (int, *failure) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, &failure{outcome: OutcomeError, msg: "building request: " + err.Error()}
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		if errors.Is(err, errTooManyRedirects) {
			return 0, &failure{outcome: OutcomeError, msg: unwrapURL(err)}
		}
		return 0, &failure{outcome: OutcomeError, retryable: true, msg: unwrapURL(err)}
	}
	defer resp.Body.Close()

	switch ClassifyStatus(resp.StatusCode) {
	case StatusRetryable:
		drain(resp.Body)
		return resp.StatusCode, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, retryable: true,
			delay: RetryAfter(resp.Header.Get("Retry-After"), time.Now()), msg: "HTTP " + resp.Status}
	case StatusPermanent:
		drain(resp.Body)
		return resp.StatusCode, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, msg: "HTTP " + resp.Status}
	}
	limit := f.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := &failure{outcome: OutcomeError, status: resp.StatusCode, msg: fmt.Sprintf("body is over the %d-byte cap", limit)}
	if resp.ContentLength > limit {
		return resp.StatusCode, tooLarge
	}
	w, err := f.Store.Create(ctx, blob)
	if err != nil {
		return resp.StatusCode, &failure{outcome: OutcomeError, status: resp.StatusCode, retryable: true, msg: err.Error()}
	}
	defer w.Abort() //nolint:errcheck // a no-op after Commit

	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if read.Add(int64(n)) > limit {
				return resp.StatusCode, tooLarge
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return resp.StatusCode, &failure{outcome: OutcomeError, status: resp.StatusCode, retryable: true, msg: "storing body: " + err.Error()}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				return resp.StatusCode, &failure{outcome: OutcomeError, status: resp.StatusCode, retryable: true,
					msg: fmt.Sprintf("body truncated after %d of %d bytes", read.Load(), resp.ContentLength)}
			}
			return resp.StatusCode, &failure{outcome: OutcomeError, status: resp.StatusCode, retryable: true,
				msg: fmt.Sprintf("reading body after %d bytes: %v", read.Load(), rerr)}
		}
	}
	if err := w.Commit(); err != nil {
		return resp.StatusCode, &failure{outcome: OutcomeError, status: resp.StatusCode, retryable: true, msg: err.Error()}
	}
	return resp.StatusCode, nil
}

// fetchURL fetches one URL with the batch's per-URL policy: attempts with
// their own timeout, exponential backoff (or the server's Retry-After)
// between them, all within the URL's budget. prior counts attempts made
// before a restart. It returns a final word on the URL; ctx being canceled
// ends it as canceled.
func (f *Fetcher) fetchURL(ctx context.Context, t URLTask, prefix string, p Policy, prior int) (out Fetched) {
	start := time.Now()
	out = Fetched{Index: t.Index, URL: t.URL, Attempts: prior}
	defer func() { out.ElapsedMS = time.Since(start).Milliseconds() }()
	urlCtx := ctx
	if p.URLTimeout > 0 {
		var cancel context.CancelFunc
		urlCtx, cancel = context.WithTimeout(ctx, p.URLTimeout)
		defer cancel()
	}
	blob := BodyKey(prefix, t.Index)
	maxAttempts := max(p.MaxAttempts, 1)
	for {
		release, err := f.acquire(urlCtx)
		if err != nil {
			return f.ended(ctx, out, nil)
		}
		out.Attempts++
		attemptCtx, cancel := context.WithTimeout(urlCtx, p.AttemptTimeout)
		var read atomic.Int64
		status, fail := f.fetchOnce(attemptCtx, t.URL, blob, &read)
		timedOut := attemptCtx.Err() != nil
		cancel()
		release()
		out.Status = status
		if fail == nil {
			out.Blob, out.Size = blob, read.Load()
			return out
		}
		if ctx.Err() != nil || urlCtx.Err() != nil {
			return f.ended(ctx, out, fail)
		}
		if timedOut {
			fail = &failure{outcome: OutcomeTimeout, retryable: true, msg: "attempt timed out (attempt_timeout)"}
		}
		if !fail.retryable || out.Attempts >= maxAttempts {
			return finish(out, fail)
		}
		delay := p.Backoff(out.Attempts)
		if fail.delay > 0 {
			delay = fail.delay
		}
		if dl, ok := urlCtx.Deadline(); ok && time.Now().Add(delay).After(dl) {
			return finish(out, fail) // no budget left for another attempt
		}
		select {
		case <-time.After(delay):
		case <-urlCtx.Done():
			return f.ended(ctx, out, fail)
		}
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
	if last != nil && last.msg != "" {
		out.Error += " after: " + last.msg
	}
	return out
}

func finish(out Fetched, fail *failure) Fetched {
	out.Outcome, out.Status, out.Error = fail.outcome, fail.status, fail.msg
	return out
}

// fetchCheckpoint is the fetch activity's heartbeat: the URLs done so far
// and the attempts made on the others, so a retried chunk resumes.
type fetchCheckpoint struct {
	Done     []Fetched   `json:"done"`
	Attempts map[int]int `json:"attempts,omitempty"`
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
	}
	items := make([]Fetched, len(tasks))
	done := make([]bool, len(tasks))
	attempts := map[int]int{}
	pos := make(map[int]int, len(tasks))
	for i, t := range tasks {
		pos[t.Index] = i
	}
	var cp fetchCheckpoint
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &cp) == nil {
		for _, d := range cp.Done {
			if i, ok := pos[d.Index]; ok {
				items[i], done[i] = d, true
			}
		}
		for idx, n := range cp.Attempts {
			attempts[idx] = n
		}
	}

	var mu sync.Mutex
	running := map[int]int{} // index -> attempts made before this run
	checkpoint := func() fetchCheckpoint {
		mu.Lock()
		defer mu.Unlock()
		c := fetchCheckpoint{Attempts: map[int]int{}}
		for i, ok := range done {
			if ok {
				c.Done = append(c.Done, items[i])
			}
		}
		for idx, n := range running {
			c.Attempts[idx] = n + 1 // the attempt under way counts
		}
		return c
	}
	stopHB := heartbeat(ctx, f.heartbeatEvery(), func() any { return checkpoint() })
	defer stopHB()

	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
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
			items[i] = Fetched{Index: t.Index, URL: t.URL, Outcome: OutcomeCanceled, Error: "canceled", Attempts: attempts[t.Index]}
			done[i] = true
			mu.Unlock()
			continue
		}
		mu.Lock()
		running[t.Index] = attempts[t.Index]
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := f.fetchURL(runCtx, t, req.Prefix, req.Policy, attempts[t.Index])
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
	select {
	case <-activity.GetWorkerStopChannel(ctx):
		// The worker is shutting down: fail this attempt so the chunk is
		// retried on another worker, from the last checkpoint.
		return nil, temporal.NewApplicationError("worker stopped mid-chunk", "WorkerStopping")
	default:
	}
	if ctx.Err() != nil {
		// Canceled: report what was done, so the batch's result is true.
		return nil, temporal.NewCanceledError(FetchChunkResult{Items: items})
	}
	activity.GetLogger(ctx).Debug("chunk fetched", "chunk", req.Chunk, "urls", len(items))
	return &FetchChunkResult{Items: items}, nil
}

func (f *Fetcher) readURLs(ctx context.Context, key string, first int) ([]URLTask, error) {
	r, err := f.Store.Open(ctx, key)
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
func (f *Fetcher) RemoveBlobs(ctx context.Context, prefix string) error {
	if err := f.Store.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("removing blobs under %s: %w", prefix, err)
	}
	return nil
}

func (f *Fetcher) heartbeatEvery() time.Duration {
	if f.HeartbeatEvery > 0 {
		return f.HeartbeatEvery
	}
	return DefaultHeartbeatEvery
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

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

// heartbeat records details() every interval until stop is called. A
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
				activity.RecordHeartbeat(ctx, details())
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
