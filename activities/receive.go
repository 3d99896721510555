package activities

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"go.temporal.io/sdk/activity"

	"github.com/batchfetch/batchfetch/blobstore"
)

// sink is where an attempt writes a body: a blob of its own (w, the
// attempt's pausable writer when the store can keep parts), or, small,
// memory, until it goes into the chunk's pack.
type sink struct {
	w         blobstore.Writer
	small     *memBody
	committed bool
}

// receive writes the body of resp (or the rest of a resumed one, after
// its kept part: cur) to the attempt's blob or, small, to the chunk's
// pack, checking it against the body cap and the length the server said.
func (f *Fetcher) receive(a *attempt, resp *http.Response, status int, cur Resume) (int, stored, *failure) {
	var storeErr error // a write the store refused, if one was
	fail := func(retryable bool, msg string) (int, stored, *failure) {
		if blobstore.NoSpace(storeErr) {
			a.discard() // the URL waits for room: a kept part would take some
		}
		return status, stored{}, a.noSpace(storeErr, &failure{outcome: OutcomeError, status: status, retryable: retryable, msg: msg})
	}
	limit := f.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	if resp.ContentLength > limit-cur.Bytes {
		a.discard()
		return fail(false, tooLarge(limit))
	}
	if resp.ContentLength >= 0 {
		a.length = cur.Bytes + resp.ContentLength
	}
	unclaim, err := f.haveRoom(resp.ContentLength)
	if err != nil {
		storeErr = err
		return fail(true, err.Error())
	}
	defer unclaim()
	pk := packOf(a.ctx)
	s, err := f.sinkFor(a, resp.ContentLength, pk)
	if err != nil {
		a.st.set(Resume{})
		storeErr = err
		return fail(true, err.Error())
	}
	if a.pw == nil {
		cur.Blob = "" // this store cannot keep a part for later
	}
	a.st.set(cur)
	defer a.release(s)
	if msg, retryable, err := f.copyBody(a, s, resp, limit, cur.Bytes+resp.ContentLength); msg != "" {
		storeErr = err
		return fail(retryable, msg)
	}
	done := a.st.get()
	if done.Total != 0 && done.Bytes != done.Total {
		return fail(true, fmt.Sprintf("body truncated after %d of %d bytes", done.Bytes, done.Total))
	}
	out, err := f.commit(a, s, pk, done)
	if err != nil {
		storeErr = err
		return fail(true, err.Error())
	}
	out.meta = metaOf(resp.Header)
	return status, out, nil
}

func tooLarge(limit int64) string { return fmt.Sprintf("body is over the %d-byte cap", limit) }

// sinkFor is where a body of the given length (-1: unknown) goes: on
// from the kept part, in memory for the chunk's pack when small, or in a
// blob of its own, resumable where the store can keep parts.
func (f *Fetcher) sinkFor(a *attempt, length int64, pk *chunkPack) (*sink, error) {
	switch {
	case a.pw != nil:
		return &sink{w: a.pw}, nil
	case pk != nil && length <= SmallBody: // or of unknown length
		m := &memBody{}
		return &sink{w: m, small: m}, nil
	case a.canResume:
		pw, err := a.resumer.CreateResumable(a.ctx, a.key)
		if err != nil {
			return nil, err
		}
		a.setPW(pw)
		return &sink{w: pw}, nil
	default:
		w, err := f.Store.Create(a.ctx, a.key)
		if err != nil {
			return nil, err
		}
		return &sink{w: w}, nil
	}
}

// release ends an attempt's body that was not committed: a part-read body
// is kept for the next attempt when the server can resume it, dropped
// otherwise.
func (a *attempt) release(s *sink) {
	if s.committed {
		return
	}
	if a.pw != nil && a.st.get().resumable() {
		a.pause()
		return
	}
	_ = s.w.Abort()
	a.st.set(Resume{})
}

// copyBuffer is the buffer a body is read through, one per body being
// read: at 5,000 requests in flight, 5,000 of them (312 MiB at most;
// pages a slow body never fills are not even resident). Copying a large
// body through it costs the CPU time of 256 KiB reads, and 32 KiB reads
// were about 14% slower (BenchmarkFetchLargeBody).
const copyBuffer = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

// copyBody streams resp's body into s, counting it in a.st. A small body
// that outgrows SmallBody moves to a blob of its own. It returns why it
// stopped short ("" for the whole body), and whether another attempt may
// do better, and the store's error when it refused a write; want is the
// length the server said (negative: unknown).
func (f *Fetcher) copyBody(a *attempt, s *sink, resp *http.Response, limit, want int64) (msg string, retryable bool, storeErr error) {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if a.st.get().Bytes+int64(n) > limit {
				_ = s.w.Abort()
				a.st.set(Resume{})
				s.committed = true // nothing to keep
				return tooLarge(limit), false, nil
			}
			if s.small != nil && len(s.small.b)+n > SmallBody {
				// Larger than it looked: a blob of its own, resumable.
				spw, sw, err := f.spill(a.ctx, a.key, s.small.b, a.resumer, a.canResume)
				if err != nil {
					return "storing body: " + err.Error(), true, err
				}
				s.w, s.small = sw, nil
				a.setPW(spw)
				if a.pw != nil {
					st := a.st.get()
					st.Blob = a.key
					a.st.set(st)
				}
			}
			if _, err := s.w.Write(buf[:n]); err != nil {
				return "storing body: " + err.Error(), true, err
			}
			a.st.wrote(buf[:n])
		}
		if rerr == io.EOF {
			return "", false, nil
		}
		if rerr != nil {
			return readFailure(rerr, a.st.get().Bytes, want, resp.ContentLength), true, nil
		}
	}
}

// readFailure says why reading a body stopped after read bytes.
func readFailure(err error, read, want, contentLength int64) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) && contentLength < 0:
		return fmt.Sprintf("body cut off after %d bytes (the connection closed mid-stream)", read)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("body truncated after %d of %d bytes", read, want)
	default:
		return fmt.Sprintf("reading body after %d bytes: %v", read, err)
	}
}

// commit stores a whole body: a small one in the chunk's pack (or, the
// pack having failed, in a blob of its own), any other in its blob.
func (f *Fetcher) commit(a *attempt, s *sink, pk *chunkPack, done Resume) (stored, error) {
	if s.small != nil {
		packKey, off, err := pk.append(s.small.b)
		if err == nil {
			s.committed = true
			a.st.set(Resume{})
			return stored{key: packKey, off: &off, size: done.Bytes, crc: done.CRC32C}, nil
		}
		// The pack failed (the next body starts another): this one goes
		// to a blob of its own.
		activity.GetLogger(a.ctx).Warn("the chunk's pack failed, storing the body on its own", "url", Redact(a.url), "error", err)
		w, err := f.Store.Create(a.ctx, a.key)
		if err != nil {
			return stored{}, fmt.Errorf("storing body: %w", err)
		}
		s.w = w
		if _, err := w.Write(s.small.b); err != nil {
			return stored{}, fmt.Errorf("storing body: %w", err)
		}
	}
	if err := s.w.Commit(); err != nil {
		return stored{}, err
	}
	s.committed = true
	a.st.set(Resume{})
	return stored{key: a.key, size: done.Bytes, crc: done.CRC32C}, nil
}
