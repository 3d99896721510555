package activities

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/batchfetch/batchfetch/blobstore"
)

// SmallBody is the largest body a chunk keeps in its pack: one file for
// all its small bodies instead of one each. A body is held in memory
// until it ends, then appended; one that grows past this goes to a blob
// of its own (and can resume). At 100 fetch slots that is at most 6.4 MiB
// held.
const SmallBody = 64 << 10

// PackKey names the pack one attempt at a chunk writes: no two attempts
// share one, so a stale attempt that wakes up appends only to its own.
func PackKey(work string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return work + "/pack." + hex.EncodeToString(b[:])
}

// chunkPack is a chunk attempt's packs: one, created on the first small
// body, or another after a failure (the body that met the failure goes
// to a blob of its own) or once one is full (the body goes to the next).
type chunkPack struct {
	ctx   context.Context // the chunk's, without its cancellation
	store blobstore.Packer
	work  string // the chunk's work directory (WorkPrefix)
	mu    sync.Mutex
	cur   *openPack
	all   []*openPack
}

type openPack struct {
	key    string
	pack   blobstore.Pack
	synced int64 // bytes known to be on disk (Sync)
	closed bool
}

func (c *chunkPack) append(b []byte) (string, int64, error) {
	c.mu.Lock()
	if c.cur == nil {
		key := PackKey(c.work)
		p, err := c.store.CreatePack(c.ctx, key)
		if err != nil {
			c.mu.Unlock()
			return "", 0, err
		}
		c.cur = &openPack{key: key, pack: p}
		c.all = append(c.all, c.cur)
	}
	op := c.cur
	c.mu.Unlock()
	off, err := op.pack.Append(b)
	if err != nil {
		c.mu.Lock()
		if c.cur == op {
			c.cur = nil // the next small body starts a new pack
		}
		c.mu.Unlock()
		if errors.Is(err, blobstore.ErrPackFull) {
			return c.append(b) // this one too
		}
		return "", 0, err
	}
	return op.key, off, nil
}

// sync makes what was appended durable and returns, for each of this
// attempt's packs, how many bytes are. A checkpoint lists a packed body
// only once its bytes are: the attempt after a lost worker (or a shared
// volume that shows writes at close or sync) finds every body it is
// told of.
func (c *chunkPack) sync() map[string]int64 {
	c.mu.Lock()
	packs := append([]*openPack(nil), c.all...)
	c.mu.Unlock()
	out := make(map[string]int64, len(packs))
	for _, op := range packs {
		c.mu.Lock()
		closed := op.closed
		c.mu.Unlock()
		if !closed {
			if n, err := op.pack.Sync(); err == nil {
				c.mu.Lock()
				op.synced = max(op.synced, n)
				c.mu.Unlock()
			}
		}
		c.mu.Lock()
		out[op.key] = op.synced
		c.mu.Unlock()
	}
	return out
}

// close ends the packs. They are never deleted here: the URLs a
// checkpoint recorded point into them, for this attempt's successor. They
// go with the chunk's work directory, once its hash is recorded. An error means their bytes may not all
// be where the results say.
func (c *chunkPack) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first error
	for _, op := range c.all {
		if !op.closed {
			op.closed = true
			if err := op.pack.Close(); err != nil && first == nil {
				first = fmt.Errorf("closing pack %s: %w", op.key, err)
			}
		}
	}
	c.cur = nil
	return first
}

// unsynced tells whether a packed body of this attempt is not yet known
// to be on disk.
func unsynced(it Fetched, synced map[string]int64) bool {
	if it.Off == nil {
		return false
	}
	n, mine := synced[it.Blob]
	return mine && *it.Off+it.Size > n
}

type packKey struct{}

// withPack gives the fetches of a chunk attempt its pack, when the store
// can hold one.
func withPack(ctx context.Context, store blobstore.Store, work string) (context.Context, *chunkPack) {
	p, ok := store.(blobstore.Packer)
	if !ok {
		return ctx, nil
	}
	c := &chunkPack{ctx: context.WithoutCancel(ctx), store: p, work: work}
	return context.WithValue(ctx, packKey{}, c), c
}

func packOf(ctx context.Context) *chunkPack {
	c, _ := ctx.Value(packKey{}).(*chunkPack)
	return c
}

// memBody holds a small body in memory (a blobstore.Writer).
type memBody struct{ b []byte }

func (m *memBody) Write(p []byte) (int, error) { m.b = append(m.b, p...); return len(p), nil }
func (m *memBody) Commit() error               { return nil }
func (m *memBody) Abort() error                { m.b = nil; return nil }

// spill moves a body that outgrew SmallBody to a blob of its own: a
// resumable one when the store can keep parts.
func (f *Fetcher) spill(ctx context.Context, key string, held []byte, resumer blobstore.Resumer, canResume bool) (blobstore.PausableWriter, blobstore.Writer, error) {
	var pw blobstore.PausableWriter
	var w blobstore.Writer
	var err error
	if canResume {
		pw, err = resumer.CreateResumable(ctx, key)
		w = pw
	} else {
		w, err = f.Store.Create(ctx, key)
	}
	if err != nil {
		return nil, nil, err
	}
	if _, err := w.Write(held); err != nil {
		_ = w.Abort()
		return nil, nil, err
	}
	return pw, w, nil
}
