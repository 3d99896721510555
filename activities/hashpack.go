package activities

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/batchfetch/batchfetch/blobstore"
)

// packWindow is the most of a pack one read of an S3 pack takes: the hash
// of a chunk's small bodies holds at most this much of each of its packs.
var packWindow int64 = 4 << 20

// packReads is how one hash activity reads the small bodies of its chunk
// from S3 packs: a pack's bodies in one ranged request per packWindow
// bytes (a whole pack of small pages in one), not a request or two per
// body. A directory's packs are read in place, a body at a time.
type packReads struct {
	store *blobstore.S3Bucket
	mu    sync.Mutex
	spans map[string]span // per pack: from the first body's start to the last one's end
	win   map[string]span // per pack: the bytes read last
}

type span struct {
	off, end int64
	b        []byte // win only
}

type packReadsKey struct{}

// withPackReads gives a hash activity of items on S3 its packReads.
func withPackReads(ctx context.Context, store blobstore.Store, items []Fetched) context.Context {
	s3, ok := store.(*blobstore.S3Bucket)
	if !ok {
		return ctx
	}
	spans := map[string]span{}
	for _, it := range items {
		if it.Off == nil || it.Outcome != "" || it.NotModified || it.NoBody {
			continue
		}
		sp, seen := spans[it.Blob]
		if !seen {
			sp = span{off: *it.Off, end: *it.Off + it.Size}
		}
		sp.off, sp.end = min(sp.off, *it.Off), max(sp.end, *it.Off+it.Size)
		spans[it.Blob] = sp
	}
	if len(spans) == 0 {
		return ctx
	}
	return context.WithValue(ctx, packReadsKey{}, &packReads{store: s3, spans: spans, win: map[string]span{}})
}

func packReadsOf(ctx context.Context) *packReads {
	p, _ := ctx.Value(packReadsKey{}).(*packReads)
	return p
}

// body is the size bytes of pack key from off (fewer where the pack is
// cut short), from the window last read or a new one: the rest of the
// pack's span from the first body's start, or from off, packWindow bytes
// at most. ok false: the window could not be read (the caller reads the
// body on its own, and meets the error if it is one).
func (p *packReads) body(ctx context.Context, key string, off, size int64) (r io.Reader, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, have := p.win[key]
	if !have || off < w.off || off+size > w.end {
		sp := p.spans[key]
		from := off
		if !have && off >= sp.off && off+size <= sp.off+packWindow {
			from = sp.off // the first read starts where the bodies do
		}
		end := max(off+size, min(sp.end, from+packWindow))
		b, err := p.read(ctx, key, from, end-from)
		if err != nil {
			return nil, false
		}
		w = span{off: from, end: end, b: b}
		p.win[key] = w
	}
	lo, hi := min(off-w.off, int64(len(w.b))), min(off-w.off+size, int64(len(w.b)))
	return bytes.NewReader(w.b[lo:hi]), true
}

func (p *packReads) read(ctx context.Context, key string, off, n int64) ([]byte, error) {
	rc, err := p.store.OpenRange(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
