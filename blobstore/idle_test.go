package blobstore

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// stalled is a reader that gives its bytes, then waits for its context, as
// a read over a partition that drops packets does.
type stalled struct {
	ctx  context.Context
	data string
}

func (s *stalled) Read(p []byte) (int, error) {
	if s.data != "" {
		n := copy(p, s.data)
		s.data = s.data[n:]
		return n, nil
	}
	<-s.ctx.Done()
	return 0, s.ctx.Err()
}

func (s *stalled) Close() error { return nil }

// A read from an object store that gets no bytes for BucketReadIdle fails,
// saying so, however long its caller's context would have let it wait; one
// whose bytes keep coming does not.
func TestAStalledObjectStoreReadFails(t *testing.T) {
	defer func(d time.Duration) { BucketReadIdle = d }(BucketReadIdle)
	BucketReadIdle = 200 * time.Millisecond
	r, err := openIdle(context.Background(), "batches/r/x", func(ctx context.Context) (io.ReadCloser, error) {
		return &stalled{ctx: ctx, data: "first bytes"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := make([]byte, 4)
	for range 3 { // bytes keep coming: no timeout, however long it takes in all
		time.Sleep(BucketReadIdle / 2) // the pace of a slow server: the scenario
		if _, err := r.Read(b); err != nil {
			t.Fatalf("a read with bytes failed: %v", err)
		}
	}
	_, err = io.ReadAll(r)
	if err == nil || !strings.Contains(err.Error(), "no bytes from the object store") || !strings.Contains(err.Error(), "batches/r/x") {
		t.Fatalf("a stalled read ended with %v, want the idle timeout naming the key", err)
	}
}
