package blobstore

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// BucketReadIdle is how long a read from an object store may wait for its
// next bytes before it fails. A network partition that drops packets
// without a reset would otherwise hold the read (and the hash attempt
// around it, whose heartbeats go on) until TCP gives up, many minutes
// later: failed, the attempt is retried, on another worker if need be.
var BucketReadIdle = 60 * time.Second

// openIdle opens a reader with open under a context of its own, canceled
// when no Read returns for BucketReadIdle.
func openIdle(ctx context.Context, key string, open func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
	rctx, cancel := context.WithCancel(ctx)
	w := &idleReader{key: key, cancel: cancel}
	w.timer = time.AfterFunc(BucketReadIdle, w.expire)
	r, err := open(rctx)
	if err != nil {
		w.timer.Stop()
		cancel()
		return nil, err
	}
	w.r = r
	return w, nil
}

type idleReader struct {
	r      io.ReadCloser
	key    string
	cancel context.CancelFunc
	timer  *time.Timer

	mu      sync.Mutex
	expired bool
}

func (w *idleReader) expire() {
	w.mu.Lock()
	w.expired = true
	w.mu.Unlock()
	w.cancel()
}

func (w *idleReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.mu.Lock()
	expired := w.expired
	w.mu.Unlock()
	if expired {
		return n, fmt.Errorf("blobstore: reading %s: no bytes from the object store for %s", w.key, BucketReadIdle)
	}
	w.timer.Reset(BucketReadIdle)
	return n, err
}

func (w *idleReader) Close() error {
	w.timer.Stop()
	err := w.r.Close()
	w.cancel()
	return err
}
