package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/process"
)

// Hasher is the CPU activity: it streams blobs through sha256. Run it on a
// worker of its own (the CPU task queue) sized to the machine's cores.
type Hasher struct {
	Store blobstore.Store
	// HeartbeatEvery defaults to DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
	// Observer hears of every hash and every URL's outcome (metrics). Optional.
	Observer Observer
	// StoreID is Store's identity (blobstore.ID) and StoreLocation where
	// it is (for messages): a chunk fetched into another store is refused.
	StoreID, StoreLocation string
	// CPU, when set, bounds the bodies hashed at once (one token each,
	// held while a body is read and hashed): the worker runs more hash
	// activities than that, so one chunk's results file and round trips
	// to the server overlap another's hashing, while the processor work
	// stays within its slots.
	CPU chan struct{}
	// Nice, when positive, is the niceness of the OS thread that hashes
	// a body of NicedBody bytes or more (Linux).
	Nice int
	// Processors are the CPU steps a batch's "process" can name, besides
	// sha256 (nil: process.Builtins()).
	Processors map[string]process.Processor
}

// NicedBody is the smallest body hashed on a thread of its own at the
// Hasher's Nice: smaller ones take less than a millisecond.
const NicedBody = 1 << 20

// cpuSlot waits for a hashing slot; release gives it back.
func (h *Hasher) cpuSlot(ctx context.Context) (release func(), err error) {
	if h.CPU == nil {
		return func() {}, nil
	}
	select {
	case h.CPU <- struct{}{}:
		return func() { <-h.CPU }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// WrongStoreType is the ApplicationError type of a hash attempt refused
// because the worker's blob store is not the one the bodies are in. It is
// retried, so that a worker on the right store can take it.
const WrongStoreType = "WrongBlobStore"

// integrityAttempts is how many attempts of a hash activity retry a body
// whose bytes differ from what the fetch stored, before its URL ends as an
// error.
const integrityAttempts = 3

// IntegrityErrorType is the ApplicationError type of a hash attempt that
// found a blob whose bytes differ from what the fetch stored.
const IntegrityErrorType = "IntegrityMismatch"

// HashChunk hashes the bodies of a chunk and returns the chunk's final
// results, or writes them to the blob store for a staged batch. It checks
// for cancellation between megabytes, so a canceled batch stops hashing
// mid-body; then what was hashed so far is returned (or stored) with the
// cancellation.
//
// Every body is checked against the size and CRC-32C its fetch recorded:
// an ok result is always the hash of the exact bytes the fetch stored.
func (h *Hasher) HashChunk(ctx context.Context, req HashChunkRequest) (*HashChunkResult, error) {
	if err := h.checkStore(ctx, req.Store); err != nil {
		return nil, err
	}
	proc, err := h.processor(req.Process)
	if err != nil {
		return nil, err
	}
	var cp hashCheckpoint
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cp)
	}
	results := cp.Results
	if len(results) > len(req.Items) {
		results = nil
	}
	if req.Staged && len(req.Items) > 0 {
		if err := h.nameStaged(ctx, &req, results); err != nil {
			return nil, err
		}
	}
	ctx = withPackReads(ctx, h.Store, req.Items[len(results):])
	pr := &hashProgress{staged: req.Staged, results: results, total: len(req.Items)}
	stop := heartbeat(ctx, h.heartbeatEvery(), func() any { return pr.checkpoint() })
	defer stop()

	for i := len(results); i < len(req.Items); i++ {
		it := req.Items[i]
		r, stopped, err := h.resultOf(ctx, req, it, cp.resumeOf(i, it), proc, pr)
		if stopped {
			return h.stopped(ctx, req, pr.results)
		}
		if err != nil {
			return nil, err // retry the chunk; results so far are checkpointed
		}
		if req.Compare && r.Changed == nil {
			r.Changed = ChangedSince(it.Prev, r)
		}
		pr.add(r)
	}
	return h.finish(ctx, req, pr.results)
}

func (h *Hasher) heartbeatEvery() time.Duration {
	if h.HeartbeatEvery > 0 {
		return h.HeartbeatEvery
	}
	return DefaultHeartbeatEvery
}

// checkStore refuses a chunk whose bodies were fetched into another blob
// store than this worker's.
func (h *Hasher) checkStore(ctx context.Context, store string) error {
	if store == "" || h.StoreID == "" || store == h.StoreID {
		return nil
	}
	msg := fmt.Sprintf("this CPU worker's blob store (%s, identity %s) is not the one the chunk's bodies were fetched into (identity %s): start it with the same --blob-dir or --blob-url as the fetch workers",
		h.StoreLocation, h.StoreID, store)
	activity.GetLogger(ctx).Error("refusing a chunk fetched into another blob store", "detail", msg)
	return temporal.NewApplicationError(msg, WrongStoreType)
}

// nameStaged gives a staged chunk's items, and the results restored for
// them, their URLs: they are in the chunk's file, not in the request.
func (h *Hasher) nameStaged(ctx context.Context, req *HashChunkRequest, results []Result) error {
	first := req.Items[0].Index // a request of an earlier version: the chunk's own first URL
	if req.From > req.First {
		first = req.First
	}
	tasks, err := readURLs(ctx, h.Store, URLsKey(req.Prefix, req.Chunk), first)
	if err != nil {
		return err
	}
	if skip := req.Items[0].Index - first; skip >= 0 && skip+len(req.Items) <= len(tasks) {
		tasks = tasks[skip : skip+len(req.Items)] // this part of the chunk
	}
	if len(tasks) != len(req.Items) {
		return fmt.Errorf("chunk %d lists %d URLs, its request %d", req.Chunk, len(tasks), len(req.Items))
	}
	items := make([]Fetched, len(req.Items))
	for i, it := range req.Items {
		it.URL = tasks[i].URL
		items[i] = it
	}
	req.Items = items
	for i := range results {
		results[i].URL = items[i].URL
	}
	return nil
}

// resultOf is one item's result: its fetch's final word, the earlier
// body's for a 304, or its body's hash (resumed from resume when there is
// one). stopped: ctx ended first. An error retries the chunk.
func (h *Hasher) resultOf(ctx context.Context, req HashChunkRequest, it Fetched, resume *hashState, proc process.Processor, pr *hashProgress) (r Result, stopped bool, err error) {
	if it.Outcome != "" {
		return it.Final(), false, nil
	}
	if it.NotModified {
		return notModified(it), false, nil
	}
	if it.NoBody { // a HEAD: its answer is the result, with no sha256
		return Result{URL: it.URL, Outcome: OutcomeOK, Status: it.Status, Attempts: it.Attempts, ElapsedMS: it.ElapsedMS,
			ContentType: it.ContentType, ETag: it.ETag, LastModified: it.LastModified, Date: it.Date}, false, nil
	}
	pr.starting(it.Blob)
	ctx, span := startHash(ctx, req, it)
	defer func() { endHash(span, r, stopped, err) }()
	if it.Off != nil {
		resume = nil // a small body in its chunk's pack: no hash to resume
	}
	if req.Keep || proc != nil {
		resume = nil // the kept copy and the processor start from byte 0
	}
	s, err := h.startSideways(ctx, req.Keep, req.Process, proc, process.Info{URL: it.URL, Status: it.Status, ContentType: it.ContentType, Size: it.Size})
	if err != nil {
		return Result{}, false, err
	}
	pr.sideways(s)
	began := time.Now()
	sum, err := h.hashHeld(ctx, it, resume, pr.at, s)
	if ctx.Err() != nil {
		s.abort()
		return Result{}, true, nil
	}
	r = Result{URL: it.URL, Status: it.Status, Attempts: it.Attempts, ElapsedMS: it.ElapsedMS, Size: it.Size}
	okBody := err == nil && sum.size == it.Size && (it.CRC32C == nil || sum.crc == *it.CRC32C)
	if !okBody {
		s.abort()
	}
	switch {
	case err != nil:
		var nf *blobError
		if !errors.As(err, &nf) || !nf.final {
			return Result{}, false, err
		}
		if err := h.stale(ctx, req); err != nil {
			return Result{}, false, err
		}
		r.Outcome, r.Error = OutcomeError, TruncateError("hashing: "+err.Error())
	case !okBody:
		msg, err := h.mismatch(ctx, it, sum)
		if err != nil {
			return Result{}, false, err
		}
		r.Outcome, r.Error = OutcomeError, msg
	default:
		observer(h.Observer).Hashed(sum.size-resumedAt(resume), time.Since(began))
		r.Outcome, r.SHA256 = OutcomeOK, sum.hex
		r.ContentType, r.ETag, r.LastModified, r.Date = it.ContentType, it.ETag, it.LastModified, it.Date
		if err := h.complete(ctx, s, req, it.Index, &r); err != nil {
			return Result{}, ctx.Err() != nil, err
		}
	}
	return r, false, nil
}

// mismatch says how a blob differs from what its fetch stored: an error
// that retries the chunk, up to integrityAttempts; then the URL's error.
func (h *Hasher) mismatch(ctx context.Context, it Fetched, sum blobSum) (string, error) {
	msg := fmt.Sprintf("integrity check failed: %s holds %d bytes", it.Blob, sum.size)
	if it.CRC32C != nil {
		msg += fmt.Sprintf(" (crc32c %08x), the fetch stored %d bytes (crc32c %08x)", sum.crc, it.Size, *it.CRC32C)
	} else {
		msg += fmt.Sprintf(", the fetch stored %d bytes", it.Size)
	}
	activity.GetLogger(ctx).Error("blob differs from what was fetched", "url", Redact(it.URL), "detail", msg)
	if activity.GetInfo(ctx).Attempt < integrityAttempts {
		return "", temporal.NewApplicationError(msg, IntegrityErrorType)
	}
	return msg, nil
}

// finish counts a chunk's results and returns them, or writes them to the
// blob store for a staged batch.
func (h *Hasher) finish(ctx context.Context, req HashChunkRequest, results []Result) (*HashChunkResult, error) {
	out := countResults(results)
	if req.Staged {
		if err := writeResults(ctx, h.Store, ResultsKeyFrom(req.Prefix, req.Chunk, piece(req.First, req.From)), results); err != nil {
			return nil, err
		}
	} else {
		out.Results = results
	}
	for i := range results {
		if req.Items[i].Outcome == "" { // the fetch counted the others
			observer(h.Observer).URLDone(results[i].Outcome)
		}
	}
	return out, nil
}

// StaleHashType is the ApplicationError type of a hash attempt that found
// its chunk's bodies gone because another attempt recorded the chunk's
// results (its bodies are removed then): an attempt of a worker that was
// lost and came back. It writes nothing.
const StaleHashType = "StaleHash"

// stale tells, for a staged chunk whose body is not found, whether the
// chunk's results are already recorded (by another attempt of this hash,
// or by the chunk's record when it stopped): then the bodies went with
// them, and this attempt must leave that record as it is. Only a
// recorded chunk's bodies are removed, so a body missing before is one
// the store lost: its URL fails, as it did.
func (h *Hasher) stale(ctx context.Context, req HashChunkRequest) error {
	if !req.Staged {
		return nil // the results travel back: a stale one goes nowhere
	}
	from := piece(req.First, req.From)
	for _, key := range []string{ResultsKeyFrom(req.Prefix, req.Chunk, from), StoppedResultsKeyFrom(req.Prefix, req.Chunk, from)} {
		r, err := h.Store.Open(ctx, key)
		if err == nil {
			r.Close()
			return temporal.NewApplicationError(fmt.Sprintf("chunk %d's results are recorded (%s) and its bodies removed: this hash attempt is stale and writes nothing", req.Chunk, key), StaleHashType)
		}
		if !errors.Is(err, blobstore.ErrNotFound) {
			return err // retry: whether the chunk is recorded is not known
		}
	}
	return nil
}
