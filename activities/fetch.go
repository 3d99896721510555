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
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

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
	// Observer hears of every fetch (metrics). Optional.
	Observer Observer
	// StoreID is Store's identity (blobstore.ID), carried in every fetch
	// result so that a hash worker on another store refuses the work;
	// StoreLocation says where Store is, for messages.
	StoreID, StoreLocation string

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

// urlState is what is known of a URL being fetched: shared with the
// heartbeat, which checkpoints it.
type urlState struct {
	mu       sync.Mutex
	attempts int
	// resume is the body of the attempt under way, or the part of it kept
	// for the next attempt: its blob, how many bytes it holds and their
	// CRC, updated together after every write.
	resume Resume
}

func (st *urlState) set(r Resume) {
	st.mu.Lock()
	st.resume = r
	st.mu.Unlock()
}

func (st *urlState) get() Resume {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.resume
}

// wrote accounts for n more bytes of the body, written to the blob.
func (st *urlState) wrote(b []byte) {
	st.mu.Lock()
	st.resume.Bytes += int64(len(b))
	st.resume.CRC32C = crc32.Update(st.resume.CRC32C, castagnoli, b)
	st.mu.Unlock()
}

// checkpoint is what a retried chunk needs to resume this URL.
func (st *urlState) checkpoint() inFlight {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.resume
	if !r.resumable() {
		r = Resume{}
	}
	return inFlight{Attempts: st.attempts, Resume: r}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Resume is how far a URL's body got and what identified it, enough to ask
// the server for the rest (Range, validated with If-Range).
type Resume struct {
	Bytes int64 `json:"bytes,omitempty"`
	// ETag (strong only) or LastModified (only when it is a strong
	// validator: a second or more before the response's Date) identify
	// the body; RFC 9110 allows no other in If-Range.
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	// Total is the body's length when the server said it (0: unknown);
	// Encoding its Content-Encoding. A range of the rest must match both.
	Total    int64  `json:"total,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	// Blob is the key of the attempt that holds the first Bytes bytes
	// (paused, or still being written); CRC32C is their checksum.
	Blob   string `json:"blob,omitempty"`
	CRC32C uint32 `json:"crc32c,omitempty"`
}

func (r Resume) validator() string {
	if r.ETag != "" {
		return r.ETag
	}
	return r.LastModified
}

func (r Resume) resumable() bool {
	return r.Bytes > 0 && r.Blob != "" && r.validator() != "" && (r.Total == 0 || r.Bytes < r.Total)
}

// identify reads what identifies a response's body for a later Range
// request: a strong ETag, or else a Last-Modified that is a strong
// validator. A weak ETag rules out both (RFC 9110, 13.1.5).
func identify(resp *http.Response) Resume {
	r := Resume{Encoding: resp.Header.Get("Content-Encoding")}
	if resp.ContentLength > 0 {
		r.Total = resp.ContentLength
	}
	if etag := resp.Header.Get("ETag"); etag != "" {
		if !strings.HasPrefix(etag, "W/") {
			r.ETag = etag
		}
		return r
	}
	lm := resp.Header.Get("Last-Modified")
	modified, err1 := http.ParseTime(lm)
	date, err2 := http.ParseTime(resp.Header.Get("Date"))
	if err1 == nil && err2 == nil && date.Sub(modified) >= time.Second {
		r.LastModified = lm
	}
	return r
}

// continues tells whether a 206 answer to a request for the bytes after
// prev.Bytes is the rest of the same body: it starts there and runs to
// the end, of the same length, encoding and validator. It returns the
// body's total length.
func continues(resp *http.Response, prev Resume) (int64, bool) {
	var start, end, total int64
	if n, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil || n != 3 {
		return 0, false
	}
	switch {
	case start != prev.Bytes || end != total-1 || (prev.Total != 0 && total != prev.Total):
		return 0, false
	case resp.Header.Get("Content-Encoding") != prev.Encoding:
		return 0, false
	case prev.ETag != "" && resp.Header.Get("ETag") != prev.ETag:
		return 0, false // a 206 repeats the validator (RFC 9110 15.3.7)
	case prev.ETag == "" && resp.Header.Get("Last-Modified") != prev.LastModified:
		return 0, false
	}
	return total, true
}

// stored is a body an attempt committed.
type stored struct {
	key  string
	size int64
	crc  uint32
}

// dropKept tells whether a part-read body is of no use to a later attempt:
// the batch was canceled, or the server gave up on this attempt (a later
// one resumes from the checkpoint, or starts over if this part is gone).
// A body cut off by the attempt's own timeout, or by its worker shutting
// down (the chunk resumes on another worker), is kept.
func dropKept(ctx context.Context) bool {
	if ctx.Err() == nil {
		return false
	}
	cause := context.Cause(ctx)
	return !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, worker.ErrWorkerShutdown)
}

// cancelRequested tells whether the workflow asked for the activity to be
// canceled, as opposed to the server no longer knowing this attempt (it
// timed out while the worker was frozen or cut off: a zombie).
func cancelRequested(ctx context.Context) bool {
	var c *temporal.CanceledError
	return ctx.Err() != nil && errors.As(context.Cause(ctx), &c)
}

// fetchOnce makes one attempt: GET url and stream the body into a blob of
// this attempt's own. When an earlier attempt kept part of the body and the
// server identified it, it copies that part into the new blob (checking it
// against its CRC) and asks the server for the rest only.
func (f *Fetcher) fetchOnce(ctx context.Context, url, prefix string, index int, st *urlState) (int, stored, *failure) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, stored{}, &failure{outcome: OutcomeError, msg: "building request: " + err.Error()}
	}
	key := attemptKey(prefix, index)
	prev := st.get()
	resumer, canResume := f.Store.(blobstore.Resumer)
	var pw blobstore.PausableWriter
	if canResume && prev.resumable() {
		crc := crc32.New(castagnoli)
		pw, err = resumer.ResumeFrom(ctx, key, prev.Blob, prev.Bytes, crc)
		switch {
		case err != nil:
			activity.GetLogger(ctx).Info("cannot resume download, starting over", "url", Redact(url), "error", err)
			pw = nil
			st.set(Resume{})
		case crc.Sum32() != prev.CRC32C:
			activity.GetLogger(ctx).Warn("kept part of the body does not match its checksum, starting over", "url", Redact(url), "bytes", prev.Bytes)
			_ = pw.Abort()
			pw = nil
			st.set(Resume{})
		default:
			prev.Blob = key // a checkpoint now points at this attempt's copy
			st.set(prev)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", prev.Bytes))
			req.Header.Set("If-Range", prev.validator())
		}
	}
	// discard drops what this attempt holds; pause keeps it for the next.
	discard := func() {
		if pw != nil {
			_ = pw.Abort()
			pw = nil
		}
		st.set(Resume{})
	}
	pause := func() {
		if pw == nil {
			return
		}
		if dropKept(ctx) || pw.Pause() != nil {
			discard()
		}
	}
	resp, err := f.Client.Do(req)
	if err != nil {
		pause()
		var blocked *BlockedError
		if errors.Is(err, errTooManyRedirects) || errors.As(err, &blocked) {
			return 0, stored{}, &failure{outcome: OutcomeError, msg: unwrapURL(err)}
		}
		return 0, stored{}, &failure{outcome: OutcomeError, retryable: true, msg: unwrapURL(err)}
	}
	defer resp.Body.Close()

	if pw != nil && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// The server cannot serve the rest (the kept part may be the
		// whole body, its stream having failed after the last byte):
		// start over from byte zero.
		drain(resp.Body)
		resp.Body.Close()
		discard()
		return f.fetchOnce(ctx, url, prefix, index, st)
	}
	switch ClassifyStatus(resp.StatusCode) {
	case StatusRetryable:
		pause()
		drain(resp.Body)
		return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, retryable: true,
			delay: RetryAfter(resp.Header.Get("Retry-After"), time.Now()), msg: "HTTP " + resp.Status}
	case StatusPermanent:
		discard()
		drain(resp.Body)
		return resp.StatusCode, stored{}, &failure{outcome: OutcomeHTTPError, status: resp.StatusCode, msg: "HTTP " + resp.Status}
	}
	status := resp.StatusCode
	cur := identify(resp)
	cur.Blob = key
	if pw != nil {
		total, ok := continues(resp, prev)
		if status != http.StatusPartialContent || !ok {
			// The body changed, the server ignored the range, or its
			// answer is not exactly the rest of the same body: drop the
			// kept part and take the whole body.
			discard()
			if status == http.StatusPartialContent {
				drain(resp.Body)
				resp.Body.Close()
				activity.GetLogger(ctx).Info("the rest of the body does not match the kept part, starting over", "url", Redact(url), "content_range", resp.Header.Get("Content-Range"))
				return f.fetchOnce(ctx, url, prefix, index, st)
			}
		} else {
			cur = prev // the rest of the same body, after the copied part
			cur.Total = total
			status = http.StatusOK
			activity.GetLogger(ctx).Info("resuming download", "url", Redact(url), "offset", prev.Bytes)
		}
	}
	if status == http.StatusPartialContent {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "unexpected partial content " + resp.Header.Get("Content-Range")}
	}

	limit := f.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	tooLarge := &failure{outcome: OutcomeError, status: status, msg: fmt.Sprintf("body is over the %d-byte cap", limit)}
	if resp.ContentLength > limit-cur.Bytes {
		discard()
		return status, stored{}, tooLarge
	}
	var w blobstore.Writer
	switch {
	case pw != nil:
		w = pw
	case canResume:
		if pw, err = resumer.CreateResumable(ctx, key); err == nil {
			w = pw
		}
	default:
		w, err = f.Store.Create(ctx, key)
	}
	if err != nil {
		st.set(Resume{})
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: err.Error()}
	}
	if pw == nil {
		cur.Blob = "" // this store cannot keep a part for later
	}
	st.set(cur)
	committed := false
	defer func() {
		if committed {
			return
		}
		// Keep a part-read body for the next attempt when the server can
		// resume it; drop it otherwise.
		if pw != nil && st.get().resumable() {
			pause()
			return
		}
		_ = w.Abort()
		st.set(Resume{})
	}()

	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if st.get().Bytes+int64(n) > limit {
				_ = w.Abort()
				st.set(Resume{})
				committed = true // nothing to keep
				return status, stored{}, tooLarge
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: "storing body: " + err.Error()}
			}
			st.wrote(buf[:n])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			read := st.get().Bytes
			if errors.Is(rerr, io.ErrUnexpectedEOF) {
				msg := fmt.Sprintf("body truncated after %d of %d bytes", read, cur.Bytes+resp.ContentLength)
				if resp.ContentLength < 0 {
					msg = fmt.Sprintf("body cut off after %d bytes (the connection closed mid-stream)", read)
				}
				return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: msg}
			}
			return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true,
				msg: fmt.Sprintf("reading body after %d bytes: %v", read, rerr)}
		}
	}
	done := st.get()
	if done.Total != 0 && done.Bytes != done.Total {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true,
			msg: fmt.Sprintf("body truncated after %d of %d bytes", done.Bytes, done.Total)}
	}
	if err := w.Commit(); err != nil {
		return status, stored{}, &failure{outcome: OutcomeError, status: status, retryable: true, msg: err.Error()}
	}
	committed = true
	st.set(Resume{})
	return status, stored{key: key, size: done.Bytes, crc: done.CRC32C}, nil
}

// fetchURL fetches one URL with the batch's per-URL policy: attempts with
// their own timeout, exponential backoff (or the server's Retry-After)
// between them, all within the URL's budget. prior counts attempts made
// before a restart. It returns a final word on the URL; ctx being canceled
// ends it as canceled.
func (f *Fetcher) fetchURL(ctx context.Context, t URLTask, prefix string, p Policy, st *urlState) (out Fetched) {
	start := time.Now()
	out = Fetched{Index: t.Index, URL: t.URL}
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
		urlCtx, cancel = context.WithTimeout(ctx, p.URLTimeout)
		defer cancel()
	}
	defer func() {
		// A URL that ended without a body keeps nothing for later, unless
		// its worker is shutting down: the chunk resumes elsewhere.
		if kept := st.get(); out.Blob == "" && kept.Blob != "" && (out.Outcome != OutcomeCanceled || dropKept(ctx)) {
			if r, ok := f.Store.(blobstore.Resumer); ok {
				_ = r.Discard(context.WithoutCancel(ctx), kept.Blob)
			}
			st.set(Resume{})
		}
	}()
	maxAttempts := max(p.MaxAttempts, 1)
	for {
		release, err := f.acquire(urlCtx)
		if err != nil {
			return f.ended(ctx, out, nil)
		}
		st.mu.Lock()
		st.attempts++
		attempts := st.attempts
		st.mu.Unlock()
		attemptCtx, cancel := context.WithTimeout(urlCtx, p.AttemptTimeout)
		status, body, fail := f.fetchOnce(attemptCtx, t.URL, prefix, t.Index, st)
		timedOut := attemptCtx.Err() != nil
		cancel()
		release()
		out.Status = status
		if fail == nil {
			out.Blob, out.Size, out.CRC32C = body.key, body.size, &body.crc
			observer(f.Observer).Fetched(out.Size, time.Since(start))
			return out
		}
		if ctx.Err() != nil || urlCtx.Err() != nil {
			return f.ended(ctx, out, fail)
		}
		if timedOut {
			fail = &failure{outcome: OutcomeTimeout, retryable: true, msg: "attempt timed out (attempt_timeout)"}
		}
		if !fail.retryable || attempts >= maxAttempts {
			return finish(out, fail)
		}
		delay := p.Backoff(attempts)
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
	out.Outcome, out.Status, out.Error = fail.outcome, fail.status, TruncateError(fail.msg)
	return out
}

// FetchCheckpoint is the fetch activity's heartbeat: the URLs done so far,
// and for the others the attempts made and how far their bodies got, so a
// retried chunk resumes (a large body from its last byte). The workflow
// reads it from a timed-out chunk's last heartbeat, so the URLs done by
// then keep their results.
type FetchCheckpoint struct {
	Done    []Fetched        `json:"done"`
	Running map[int]inFlight `json:"running,omitempty"`
}

type inFlight struct {
	Attempts int    `json:"attempts"`
	Resume   Resume `json:"resume,omitempty"`
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
				states[i].attempts, states[i].resume = r.Attempts, r.Resume
			}
		}
	}

	var mu sync.Mutex
	running := map[int]int{} // URL index -> position, for URLs under way
	checkpoint := func() FetchCheckpoint {
		mu.Lock()
		defer mu.Unlock()
		c := FetchCheckpoint{Running: map[int]inFlight{}}
		for i, ok := range done {
			if ok {
				it := items[i]
				if len(req.URLs) == 0 {
					it.URL = "" // in the chunk's file
				}
				c.Done = append(c.Done, it)
			}
		}
		for idx, i := range running {
			c.Running[idx] = states[i].checkpoint()
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
			r := f.fetchURL(runCtx, t, req.Prefix, req.Policy, states[i])
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
	return &FetchChunkResult{Items: lean(req, items), Store: f.StoreID}, nil
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
func (f *Fetcher) RemoveBlobs(ctx context.Context, prefix string) error {
	if err := f.Store.DeletePrefix(ctx, prefix); err != nil {
		return fmt.Errorf("removing blobs under %s: %w", prefix, err)
	}
	return nil
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
