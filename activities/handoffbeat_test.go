package activities

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/batchfetch/batchfetch/blobstore"
)

// secondFull is a directory store that refuses the second URL's body
// with ENOSPC once, when the first URL's body is stored.
type secondFull struct {
	*blobstore.Dir
	f       *Fetcher
	refused atomic.Bool
}

func (d *secondFull) refuse(key string) error {
	if !strings.Contains(key, "/000000001.") || d.refused.Swap(true) {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); d.f.held.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the first URL's body is being counted
	}
	return &os.PathError{Op: "write", Path: key, Err: syscall.ENOSPC}
}

func (d *secondFull) Create(ctx context.Context, key string) (blobstore.Writer, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.Create(ctx, key)
}

func (d *secondFull) CreateResumable(ctx context.Context, key string) (blobstore.PausableWriter, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.CreateResumable(ctx, key)
}

// A fetch cut short by a full disk at its second URL hands the first to
// the hash and leaves the rest to the next fetch, URLs that ran past the
// cut included (a 404 there is asked again). Its heartbeats say done
// only the URLs it hands over: the URLs past the cut are the next
// fetch's to count, or the starter's bar counts them twice.
func TestAFetchCutShortCountsDoneOnlyWhatItHandsOver(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer letGo()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gone":
			http.NotFound(w, r)
			return
		case "/held":
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 100<<10))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e.f.Store = &secondFull{Dir: d, f: e.f}
	e.f.HeartbeatEvery = 10 * time.Millisecond
	var mu sync.Mutex
	var afterCut []int // the done URLs of a heartbeat with only /held running
	// Every heartbeat the activity records, before the SDK throttles them.
	e.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&heartbeats{record: func(details []any) {
		cp, ok := details[0].(FetchCheckpoint)
		if !ok || len(cp.Running) != 1 {
			return
		}
		if _, ok := cp.Running[3]; !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if afterCut == nil {
			afterCut = []int{}
			for _, it := range cp.Done {
				afterCut = append(afterCut, it.Index)
			}
			letGo()
		}
	}}}})
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/a", srv.URL+"/b", srv.URL+"/gone", srv.URL+"/held"), Concurrency: 4, Policy: quick, Budget: 1 << 30})
	if len(items) != 1 || items[0].Index != 0 || items[0].Blob == "" {
		t.Fatalf("handed over %+v, want the first URL's body alone", items)
	}
	mu.Lock()
	defer mu.Unlock()
	if afterCut == nil {
		t.Fatal("no heartbeat while the last URL alone was held")
	}
	if !slices.Equal(afterCut, []int{0}) {
		t.Errorf("a heartbeat after the cut says done URLs %v, want [0]: the URLs past the cut are the next fetch's", afterCut)
	}
}
