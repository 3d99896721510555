package activities

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// firstFull is a directory store that refuses the first URL's body with
// ENOSPC once, when another body of the chunk is stored (the fetch then
// holds one).
type firstFull struct {
	*blobstore.Dir
	f       *Fetcher
	refused atomic.Bool
}

func (d *firstFull) refuse(key string) error {
	if !strings.Contains(key, "/000000000.") || d.refused.Swap(true) {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); d.f.held.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the other URL's body is being counted
	}
	return &os.PathError{Op: "write", Path: key, Err: syscall.ENOSPC}
}

func (d *firstFull) Create(ctx context.Context, key string) (blobstore.Writer, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.Create(ctx, key)
}

func (d *firstFull) CreateResumable(ctx context.Context, key string) (blobstore.PausableWriter, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.CreateResumable(ctx, key)
}

// A fetch whose first URL meets a full disk while a later URL's body is
// stored hands over at least one URL: it never returns none of the
// chunk's URLs (the workflow would lose them all).
func TestAFullDiskAtTheFirstURLStillHandsSomethingOver(t *testing.T) {
	srv := bodiesSite(t, map[string]int{"/a": 100 << 10, "/b": 100 << 10})
	e := newFetchEnv(t, 0)
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.f.Store = &firstFull{Dir: d, f: e.f}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/a", srv.URL+"/b"), Concurrency: 2, Policy: quick, Budget: 1 << 30})
	if len(items) == 0 {
		t.Fatal("the fetch handed over none of its 2 URLs")
	}
	for i, it := range items {
		if it.Index != i || it.Outcome != "" || it.Blob == "" || it.Attempts != 1 {
			t.Errorf("item %d: %+v, want URL %d's body after one attempt", i, it, i)
		}
	}
}
