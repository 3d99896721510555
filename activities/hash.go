package activities

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
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

// hashChunk is how much is read and hashed at a time, between
// cancellation checks. Reading 4 MiB into a buffer that stays in cache,
// then hashing it, beats hashing a mapped file (pages come from memory)
// and smaller reads (more system calls): on a 2-core VM, 85-90% of hashing
// a buffer already in memory, against 78% mapped and 65% with 256 KiB.
const hashChunk = 4 << 20

var hashBufPool = sync.Pool{New: func() any { b := make([]byte, hashChunk); return &b }}

// hashCheckpoint is the hash activity's heartbeat: the results so far and
// the state of the body under way (its blob, how far the hash got, the
// sha256 and CRC-32C states there), so a retried chunk (after a worker
// crash) resumes mid-body instead of from byte zero.
type hashCheckpoint struct {
	Results []Result `json:"results"`
	// Step is the processor's last progress report (for people watching).
	Step   string `json:"step,omitempty"`
	Blob   string `json:"blob,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	State  []byte `json:"state,omitempty"`
	CRC32C uint32 `json:"crc32c,omitempty"`
}

// hashState is how far the hash of one blob got: the digest state is
// marshalled by the hashing goroutine itself, between writes, so a
// checkpoint never pairs a digest with an offset it does not belong to.
type hashState struct {
	Offset int64
	State  []byte
	CRC32C uint32
}

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
	every := h.HeartbeatEvery
	if every <= 0 {
		every = DefaultHeartbeatEvery
	}
	if req.Store != "" && h.StoreID != "" && req.Store != h.StoreID {
		msg := fmt.Sprintf("this CPU worker's blob store (%s, identity %s) is not the one the chunk's bodies were fetched into (identity %s): start it with the same --blob-dir or --blob-url as the fetch workers",
			h.StoreLocation, h.StoreID, req.Store)
		activity.GetLogger(ctx).Error("refusing a chunk fetched into another blob store", "detail", msg)
		return nil, temporal.NewApplicationError(msg, WrongStoreType)
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
		// A staged chunk's URLs are in its file, not in the request.
		tasks, err := readURLs(ctx, h.Store, URLsKey(req.Prefix, req.Chunk), req.Items[0].Index)
		if err != nil {
			return nil, err
		}
		if len(tasks) != len(req.Items) {
			return nil, fmt.Errorf("chunk %d lists %d URLs, its request %d", req.Chunk, len(tasks), len(req.Items))
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
	}
	obs := observer(h.Observer)

	var mu sync.Mutex
	var curBlob string
	var cur *hashState
	var side *sideways
	stop := heartbeat(ctx, every, func() any {
		mu.Lock()
		defer mu.Unlock()
		c := hashCheckpoint{Results: results}
		if req.Staged {
			// The URLs are in the chunk's file: a checkpoint of a
			// hundred long URLs would be large.
			c.Results = make([]Result, len(results))
			for i, r := range results {
				r.URL = ""
				c.Results[i] = r
			}
		}
		if k := checkpointable(c.Results); k < len(c.Results) {
			// Large processor outputs: the checkpoint keeps the results
			// that fit, and a retry redoes the others.
			c.Results = c.Results[:k]
			return c
		}
		if cur != nil {
			c.Blob, c.Offset, c.State, c.CRC32C = curBlob, cur.Offset, cur.State, cur.CRC32C
		}
		c.Step = side.progress()
		return c
	})
	defer stop()

	for i := len(results); i < len(req.Items); i++ {
		it := req.Items[i]
		var r Result
		if it.Outcome != "" {
			r = it.Final()
		} else if it.NotModified {
			r = notModified(it)
		} else {
			var resume *hashState
			if i == len(cp.Results) && cp.Blob == it.Blob && cp.State != nil {
				resume = &hashState{Offset: cp.Offset, State: cp.State, CRC32C: cp.CRC32C}
			}
			mu.Lock()
			curBlob, cur = it.Blob, nil
			mu.Unlock()
			if it.Off != nil {
				resume = nil // a small body in its chunk's pack: no hash to resume
			}
			if req.Keep || proc != nil {
				resume = nil // the kept copy and the processor start from byte 0
			}
			s, err := h.startSideways(ctx, req.Keep, proc, process.Info{URL: it.URL, Status: it.Status, ContentType: it.ContentType, Size: it.Size})
			if err != nil {
				return nil, err
			}
			mu.Lock()
			side = s
			mu.Unlock()
			began := time.Now()
			sum, err := h.hashHeld(ctx, it, resume, func(s hashState) {
				mu.Lock()
				cur = &s
				mu.Unlock()
			}, s)
			if ctx.Err() != nil {
				s.abort()
				return h.stopped(ctx, req, results)
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
					return nil, err // retry the chunk; results so far are checkpointed
				}
				r.Outcome, r.Error = OutcomeError, TruncateError("hashing: "+err.Error())
			case sum.size != it.Size || (it.CRC32C != nil && sum.crc != *it.CRC32C):
				msg := fmt.Sprintf("integrity check failed: %s holds %d bytes", it.Blob, sum.size)
				if it.CRC32C != nil {
					msg += fmt.Sprintf(" (crc32c %08x), the fetch stored %d bytes (crc32c %08x)", sum.crc, it.Size, *it.CRC32C)
				} else {
					msg += fmt.Sprintf(", the fetch stored %d bytes", it.Size)
				}
				activity.GetLogger(ctx).Error("blob differs from what was fetched", "url", Redact(it.URL), "detail", msg)
				if activity.GetInfo(ctx).Attempt < integrityAttempts {
					return nil, temporal.NewApplicationError(msg, IntegrityErrorType)
				}
				r.Outcome, r.Error = OutcomeError, msg
			default:
				obs.Hashed(sum.size-resumedAt(resume), time.Since(began))
				r.Outcome, r.SHA256 = OutcomeOK, sum.hex
				r.ContentType, r.ETag, r.LastModified = it.ContentType, it.ETag, it.LastModified
				if err := h.complete(ctx, s, req, it.Index, &r); err != nil {
					if ctx.Err() != nil {
						return h.stopped(ctx, req, results)
					}
					return nil, err // retry the chunk; results so far are checkpointed
				}
			}
		}
		if req.Compare && r.Outcome == OutcomeOK {
			changed := it.Prev == nil || it.Prev.SHA256 != r.SHA256
			r.Changed = &changed
		}
		mu.Lock()
		results = append(results, r)
		cur, side = nil, nil
		mu.Unlock()
	}

	out := countResults(results)
	if req.Staged {
		if err := writeResults(ctx, h.Store, ResultsKey(req.Prefix, req.Chunk), results); err != nil {
			return nil, err
		}
	} else {
		out.Results = results
	}
	for i := range results {
		if req.Items[i].Outcome == "" { // the fetch counted the others
			obs.URLDone(results[i].Outcome)
		}
	}
	return out, nil
}

// checkpointBudget bounds a hash checkpoint: Temporal refuses heartbeat
// details over 2 MB.
const checkpointBudget = 1 << 20

// checkpointable is how many of results, from the first, fit in a
// checkpoint.
func checkpointable(results []Result) int {
	n := 0
	for i := range results {
		n += 1024 + JSONLen(results[i].URL) + JSONLen(results[i].Error) + len(results[i].Processed)
		if n > checkpointBudget {
			return i
		}
	}
	return len(results)
}

// notModified is the result of a URL the server said had not changed
// since the earlier result it was asked about: that result's body.
func notModified(it Fetched) Result {
	p := it.Prev
	if p == nil {
		p = &Prev{}
	}
	changed := false
	r := Result{URL: it.URL, Outcome: OutcomeNotModified, Status: it.Status, Attempts: it.Attempts, ElapsedMS: it.ElapsedMS,
		SHA256: p.SHA256, Size: p.Size, BodyKey: p.BodyKey, ContentType: p.ContentType, ETag: p.ETag, LastModified: p.LastModified, Changed: &changed}
	// The earlier validators stand (the 304 answered them); those the 304
	// adds fill the gaps.
	if r.ETag == "" {
		r.ETag = it.ETag
	}
	if r.LastModified == "" {
		r.LastModified = it.LastModified
	}
	if r.ContentType == "" {
		r.ContentType = it.ContentType
	}
	return r
}

func resumedAt(s *hashState) int64 {
	if s == nil {
		return 0
	}
	return s.Offset
}

// countResults counts a chunk's results.
func countResults(results []Result) *HashChunkResult {
	out := &HashChunkResult{}
	for i := range results {
		if r := results[i]; Succeeded(r.Outcome) {
			out.OK++
			if r.Outcome == OutcomeNotModified {
				out.NotModified++
			}
			if r.Changed != nil && *r.Changed {
				out.Changed++
			}
			continue
		}
		out.Failed++
		if out.FirstFailed == nil && results[i].Outcome != OutcomeCanceled {
			out.FirstFailed = &results[i]
		}
	}
	return out
}

// stopped ends a hash attempt whose context was canceled. When the
// workflow asked for it, the results so far (and the URLs it never got
// to, as canceled) go back with the cancellation, or to the blob store
// for a staged batch. An attempt the server gave up on (a zombie) returns
// nothing: another attempt owns the chunk.
func (h *Hasher) stopped(ctx context.Context, req HashChunkRequest, done []Result) (*HashChunkResult, error) {
	if !cancelRequested(ctx) {
		return nil, ctx.Err()
	}
	results := append([]Result(nil), done...)
	for _, it := range req.Items[len(done):] {
		results = append(results, stoppedResult(it, OutcomeCanceled, "canceled before hashing"))
	}
	out := countResults(results)
	if req.Staged {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := writeResults(wctx, h.Store, StoppedResultsKey(req.Prefix, req.Chunk), results); err != nil {
			activity.GetLogger(ctx).Warn("recording a canceled chunk's results failed", "chunk", req.Chunk, "error", err)
		}
	} else {
		out.Results = results
	}
	return nil, temporal.NewCanceledError(*out)
}

type blobError struct {
	final bool
	err   error
}

func (e *blobError) Error() string { return e.err.Error() }
func (e *blobError) Unwrap() error { return e.err }

// hashHeld hashes one body holding a CPU slot, given back however the
// hash ends (a panic included: the SDK recovers it, the slot must not
// stay taken).
func (h *Hasher) hashHeld(ctx context.Context, it Fetched, resume *hashState, progress func(hashState), side *sideways) (blobSum, error) {
	release, err := h.cpuSlot(ctx)
	if err != nil {
		return blobSum{}, err
	}
	defer release()
	obs := observer(h.Observer)
	obs.SlotsInUse("cpu", 1)
	defer obs.SlotsInUse("cpu", -1)
	var sum blobSum
	if h.Nice <= 0 || it.Size < NicedBody {
		sum, err = h.hashBlob(ctx, it.Blob, it.Off, it.Size, resume, progress, side)
	} else {
		niced(h.Nice, func() { sum, err = h.hashBlob(ctx, it.Blob, it.Off, it.Size, resume, progress, side) })
	}
	if err == nil {
		// The step's work after the last byte is CPU work too: within
		// the slot.
		side.finish(true)
	}
	return sum, err
}

// blobSum is what hashing a blob found.
type blobSum struct {
	hex  string
	size int64
	crc  uint32
}

// hashBlob returns the sha256, size and CRC-32C of a blob, resuming from a
// checkpointed state when one is given. progress sees the state after
// every read (the sha256 state marshalled then, with its offset and CRC).
//
// With off set, the body is size bytes of a pack from off: a pack cut
// short yields fewer, which the caller's size check catches.
func (h *Hasher) hashBlob(ctx context.Context, key string, off *int64, size int64, resume *hashState, progress func(hashState), side *sideways) (blobSum, error) {
	rc, err := h.Store.Open(ctx, key)
	if err != nil {
		return blobSum{}, &blobError{final: errors.Is(err, blobstore.ErrNotFound), err: err}
	}
	defer rc.Close()
	var r io.Reader = rc
	if off != nil {
		if err := skip(rc, *off); err != nil {
			return blobSum{}, &blobError{err: err}
		}
		r = io.LimitReader(rc, size)
	}
	sum := sha256.New()
	var offset int64
	var crc uint32
	if resume != nil && resume.Offset > 0 {
		if err := sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(resume.State); err == nil {
			if err := skip(r, resume.Offset); err != nil {
				return blobSum{}, &blobError{err: err}
			}
			offset, crc = resume.Offset, resume.CRC32C
			activity.GetLogger(ctx).Info("resuming hash", "blob", key, "offset", offset)
		} else {
			sum.Reset()
		}
	}
	bufp := hashBufPool.Get().(*[]byte)
	defer hashBufPool.Put(bufp)
	buf := *bufp
	for {
		if err := ctx.Err(); err != nil {
			return blobSum{}, err
		}
		n, err := io.ReadFull(r, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return blobSum{}, &blobError{err: fmt.Errorf("reading blob: %w", err)}
		}
		// Hash what was read a megabyte at a time, yielding in between so
		// latency-sensitive goroutines (fetches) get the processor soon.
		for i := 0; i < n; i += 1 << 20 {
			part := buf[i:min(i+1<<20, n)]
			sum.Write(part)
			crc = crc32.Update(crc, castagnoli, part)
			if err := side.write(part); err != nil {
				return blobSum{}, err
			}
			runtime.Gosched()
		}
		offset += int64(n)
		if n < len(buf) {
			return blobSum{hex: hex.EncodeToString(sum.Sum(nil)), size: offset, crc: crc}, nil
		}
		if state, err := sum.(encoding.BinaryMarshaler).MarshalBinary(); err == nil {
			progress(hashState{Offset: offset, State: state, CRC32C: crc})
		}
	}
}

// skip moves r forward by n bytes, seeking when it can.
func skip(r io.Reader, n int64) error {
	if s, ok := r.(io.Seeker); ok {
		_, err := s.Seek(n, io.SeekStart)
		return err
	}
	_, err := io.CopyN(io.Discard, r, n)
	return err
}

func writeResults(ctx context.Context, store blobstore.Store, key string, results []Result) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for i := range results {
		if err := enc.Encode(&results[i]); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit()
}
