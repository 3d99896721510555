package activities

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/blobstore"
)

// hashChunk is how much is read and hashed at a time, between
// cancellation checks. Reading 4 MiB into a buffer that stays in cache,
// then hashing it, beats hashing a mapped file (pages come from memory)
// and smaller reads (more system calls): on a 2-core VM, 85-90% of hashing
// a buffer already in memory, against 78% mapped and 65% with 256 KiB.
const hashChunk = 4 << 20

var hashBufPool = sync.Pool{New: func() any { b := make([]byte, hashChunk); return &b }}

// hashState is how far the hash of one blob got: the digest state is
// marshalled by the hashing goroutine itself, between writes, so a
// checkpoint never pairs a digest with an offset it does not belong to.
type hashState struct {
	Offset int64
	State  []byte
	CRC32C uint32
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
	r, closeBody, err := h.openBody(ctx, key, off, size)
	if err != nil {
		return blobSum{}, err
	}
	defer closeBody()
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

// openBody opens a blob, or the size bytes of a pack from off: from the
// hash's packReads when it has them, else opened and skipped to.
func (h *Hasher) openBody(ctx context.Context, key string, off *int64, size int64) (io.Reader, func(), error) {
	if pr := packReadsOf(ctx); pr != nil && off != nil {
		if r, ok := pr.body(ctx, key, *off, size); ok {
			return r, func() {}, nil
		}
	}
	rc, err := h.Store.Open(ctx, key)
	if err != nil {
		return nil, nil, &blobError{final: errors.Is(err, blobstore.ErrNotFound), err: err}
	}
	var r io.Reader = rc
	if off != nil {
		if err := skip(rc, *off); err != nil {
			rc.Close()
			return nil, nil, &blobError{err: err}
		}
		r = io.LimitReader(rc, size)
	}
	return r, func() { rc.Close() }, nil
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

func resumedAt(s *hashState) int64 {
	if s == nil {
		return 0
	}
	return s.Offset
}
