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
	"hash"
	"io"
	"runtime"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/blobstore"
)

// Hasher is the CPU activity: it streams blobs through sha256. Run it on a
// worker of its own (the CPU task queue) sized to the machine's cores.
type Hasher struct {
	Store blobstore.Store
	// HeartbeatEvery defaults to DefaultHeartbeatEvery.
	HeartbeatEvery time.Duration
	// Observer hears of every hash and every URL's outcome (metrics). Optional.
	Observer Observer
}

// hashChunk is how much is read and hashed at a time, between
// cancellation checks. Reading 4 MiB into a buffer that stays in cache,
// then hashing it, beats hashing a mapped file (pages come from memory)
// and smaller reads (more system calls): on a 2-core VM, 85-90% of hashing
// a buffer already in memory, against 78% mapped and 65% with 256 KiB.
const hashChunk = 4 << 20

var hashBufPool = sync.Pool{New: func() any { b := make([]byte, hashChunk); return &b }}

// hashCheckpoint is the hash activity's heartbeat: the results so far and
// the state of the sha256 of the body under way, so a retried chunk (after
// a worker crash) resumes mid-body instead of from byte zero.
type hashCheckpoint struct {
	Results []Result `json:"results"`
	Offset  int64    `json:"offset,omitempty"`
	State   []byte   `json:"state,omitempty"`
}

// HashChunk hashes the bodies of a chunk and returns the chunk's final
// results, or writes them to the blob store for a staged batch. It checks
// for cancellation between megabytes, so a canceled batch stops hashing
// mid-body.
func (h *Hasher) HashChunk(ctx context.Context, req HashChunkRequest) (*HashChunkResult, error) {
	every := h.HeartbeatEvery
	if every <= 0 {
		every = DefaultHeartbeatEvery
	}
	var cp hashCheckpoint
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &cp)
	}
	results := cp.Results
	if len(results) > len(req.Items) {
		results = nil
	}
	obs := observer(h.Observer)

	var mu sync.Mutex
	var cur struct {
		sum    hash.Hash
		offset int64
	}
	stop := heartbeat(ctx, every, func() any {
		mu.Lock()
		defer mu.Unlock()
		c := hashCheckpoint{Results: results}
		if cur.sum != nil {
			if state, err := cur.sum.(encoding.BinaryMarshaler).MarshalBinary(); err == nil {
				c.Offset, c.State = cur.offset, state
			}
		}
		return c
	})
	defer stop()

	for i := len(results); i < len(req.Items); i++ {
		it := req.Items[i]
		var r Result
		if it.Outcome != "" {
			r = it.Final()
		} else {
			var resumeAt int64
			var resumeState []byte
			if i == len(cp.Results) && cp.State != nil {
				resumeAt, resumeState = cp.Offset, cp.State
			}
			obs.SlotsInUse("cpu", 1)
			began := time.Now()
			sum, size, err := h.hashBlob(ctx, it.Blob, resumeAt, resumeState, func(s hash.Hash, off int64) {
				mu.Lock()
				cur.sum, cur.offset = s, off
				mu.Unlock()
			})
			obs.SlotsInUse("cpu", -1)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err == nil {
				obs.Hashed(size-resumeAt, time.Since(began))
			}
			r = Result{URL: it.URL, Status: it.Status, Attempts: it.Attempts, ElapsedMS: it.ElapsedMS, Size: size}
			if err != nil {
				var nf *blobError
				if !errors.As(err, &nf) || !nf.final {
					return nil, err // retry the chunk; results so far are checkpointed
				}
				r.Outcome, r.Error, r.Size = OutcomeError, "hashing: "+err.Error(), it.Size
			} else {
				r.Outcome, r.SHA256 = OutcomeOK, sum
			}
		}
		mu.Lock()
		results = append(results, r)
		cur.sum = nil
		mu.Unlock()
	}

	out := &HashChunkResult{}
	for i := range results {
		if results[i].Outcome == OutcomeOK {
			out.OK++
			continue
		}
		out.Failed++
		if out.FirstFailed == nil && results[i].Outcome != OutcomeCanceled {
			out.FirstFailed = &results[i]
		}
	}
	if req.Staged {
		if err := writeResults(ctx, h.Store, ResultsKey(req.Prefix, req.Chunk), results); err != nil {
			return nil, err
		}
	} else {
		out.Results = results
	}
	for i := range results {
		obs.URLDone(results[i].Outcome)
	}
	return out, nil
}

type blobError struct {
	final bool
	err   error
}

func (e *blobError) Error() string { return e.err.Error() }
func (e *blobError) Unwrap() error { return e.err }

// hashBlob returns the sha256 of a blob, resuming at offset from a
// marshalled digest state when one is given. progress sees the digest
// after every megabyte.
func (h *Hasher) hashBlob(ctx context.Context, key string, offset int64, state []byte, progress func(hash.Hash, int64)) (string, int64, error) {
	r, err := h.Store.Open(ctx, key)
	if err != nil {
		return "", 0, &blobError{final: errors.Is(err, blobstore.ErrNotFound), err: err}
	}
	defer r.Close()
	sum := sha256.New()
	if state != nil && offset > 0 {
		if err := sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err == nil {
			if err := skip(r, offset); err != nil {
				return "", 0, &blobError{err: err}
			}
			activity.GetLogger(ctx).Info("resuming hash", "blob", key, "offset", offset)
		} else {
			sum.Reset()
			offset = 0
		}
	} else {
		offset = 0
	}
	bufp := hashBufPool.Get().(*[]byte)
	defer hashBufPool.Put(bufp)
	buf := *bufp
	for {
		if err := ctx.Err(); err != nil {
			return "", 0, err
		}
		n, err := io.ReadFull(r, buf)
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return "", 0, &blobError{err: fmt.Errorf("reading blob: %w", err)}
		}
		// Hash what was read a megabyte at a time, yielding in between so
		// latency-sensitive goroutines (fetches) get the processor soon.
		for i := 0; i < n; i += 1 << 20 {
			sum.Write(buf[i:min(i+1<<20, n)])
			runtime.Gosched()
		}
		offset += int64(n)
		progress(sum, offset)
		if n < len(buf) {
			return hex.EncodeToString(sum.Sum(nil)), offset, nil
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
