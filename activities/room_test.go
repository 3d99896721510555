package activities

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// fullDisk is a directory store on a disk that is full (every new blob
// refused with ENOSPC) until the test makes room.
type fullDisk struct {
	*blobstore.Dir
	total   int64
	mu      sync.Mutex
	full    bool
	refused chan struct{} // closed at the first refusal
	once    sync.Once
}

func newFullDisk(t *testing.T, total int64) *fullDisk {
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fullDisk{Dir: d, total: total, full: true, refused: make(chan struct{})}
}

func (d *fullDisk) refuse(key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.full {
		return nil
	}
	d.once.Do(func() { close(d.refused) })
	return &os.PathError{Op: "write", Path: key, Err: syscall.ENOSPC}
}

func (d *fullDisk) makeRoom() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.full = false
}

func (d *fullDisk) Space() (int64, int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		d.once.Do(func() { close(d.refused) }) // a fetch found no room
		return d.total, 0, nil
	}
	return d.total, d.total, nil
}

func (d *fullDisk) Create(ctx context.Context, key string) (blobstore.Writer, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.Create(ctx, key)
}

func (d *fullDisk) CreateResumable(ctx context.Context, key string) (blobstore.PausableWriter, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.CreateResumable(ctx, key)
}

func (d *fullDisk) CreatePack(ctx context.Context, key string) (blobstore.Pack, error) {
	if err := d.refuse(key); err != nil {
		return nil, err
	}
	return d.Dir.CreatePack(ctx, key)
}

func bodiesSite(t *testing.T, sizes map[string]int) *httptest.Server {
	bodies := map[string][]byte{}
	for p, n := range sizes {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		bodies[p] = b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(bodies[r.URL.Path])))
		_, _ = w.Write(bodies[r.URL.Path])
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A full blob disk makes a URL wait for room, not fail, and the wait is
// no attempt: in a chunk and in an activity of its own.
func TestAFullDiskMakesFetchesWait(t *testing.T) {
	srv := bodiesSite(t, map[string]int{"/small": 2000, "/large": 3 << 20})
	for _, native := range []bool{false, true} {
		e := newFetchEnv(t, 0)
		disk := newFullDisk(t, 1<<40)
		e.f.Store = disk
		go func() {
			<-disk.refused // a fetch met the full disk: now some room
			disk.makeRoom()
		}()
		var items []Fetched
		if native {
			v, err := e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: srv.URL + "/large"}, Policy: quick})
			if err != nil {
				t.Fatalf("FetchURL on a full disk: %v", err)
			}
			var out FetchChunkResult
			if err := v.Get(&out); err != nil {
				t.Fatal(err)
			}
			items = out.Items
		} else {
			items = e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/small", srv.URL+"/large"), Concurrency: 2, Policy: quick})
		}
		for _, it := range items {
			if it.Outcome != "" || it.Attempts != 1 || it.Blob == "" {
				t.Errorf("native %v: %s ended %+v, want a body after its first attempt", native, it.URL, it)
			}
		}
	}
}

// A body that could never fit on the blob disk fails at once, saying so;
// one that meets a disk that stays full fails after the wait allowed.
func TestABodyTheDiskCannotHoldFails(t *testing.T) {
	srv := bodiesSite(t, map[string]int{"/large": 3 << 20})
	for _, tc := range []struct {
		total int64
		wait  time.Duration
		want  string
	}{
		{total: 1 << 20, wait: time.Hour, want: "larger than the whole blob disk"},
		{total: 1 << 40, wait: time.Second, want: "the blob disk stayed full for 1s"},
	} {
		e := newFetchEnv(t, 0)
		e.f.Store, e.f.RoomWait = newFullDisk(t, tc.total), tc.wait
		began := time.Now()
		items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/large"), Concurrency: 1, Policy: quick})
		it := items[0]
		if it.Outcome != OutcomeError || !strings.Contains(it.Error, "no space left on device") || !strings.Contains(it.Error, tc.want) || it.Attempts != 1 {
			t.Errorf("got %+v, want an error with %q after one attempt", it, tc.want)
		}
		if took := time.Since(began); tc.wait == time.Hour && took > 30*time.Second {
			t.Errorf("a body larger than the disk waited %s", took)
		}
	}
}

// quotaDisk refuses every new blob with EDQUOT although its file system
// has room: the writer's quota is used up.
type quotaDisk struct {
	*blobstore.Dir
}

func (d *quotaDisk) CreateResumable(ctx context.Context, key string) (blobstore.PausableWriter, error) {
	return nil, &os.PathError{Op: "write", Path: key, Err: syscall.EDQUOT}
}

func (d *quotaDisk) Space() (int64, int64, error) { return 1 << 40, 1 << 40, nil }

// A store that refuses bodies while it says it has room makes the URL
// wait as for a full disk, and fail once the wait allowed is over: it
// neither fetches the URL again and again nor waits forever.
func TestADiskThatRefusesDespiteRoomFailsInTime(t *testing.T) {
	var mu sync.Mutex
	requests := 0
	body := make([]byte, 200<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	for _, native := range []bool{false, true} {
		mu.Lock()
		requests = 0
		mu.Unlock()
		e := newFetchEnv(t, 0)
		d, err := blobstore.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e.f.Store, e.f.RoomWait = &quotaDisk{Dir: d}, 2*time.Second
		ended := make(chan string, 1)
		go func() {
			if native {
				_, err := e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: srv.URL + "/q"}, Policy: quick})
				ended <- fmt.Sprint(err)
				return
			}
			v, err := e.env.ExecuteActivity(e.f.FetchChunk, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/q"), Concurrency: 1, Policy: quick})
			var out FetchChunkResult
			if err == nil {
				err = v.Get(&out)
			}
			if err != nil {
				ended <- err.Error()
				return
			}
			ended <- fmt.Sprintf("%s: %s", out.Items[0].Outcome, out.Items[0].Error)
		}()
		select {
		case got := <-ended:
			if !strings.Contains(got, "no space left on device") || !strings.Contains(got, "stayed full for 2s") {
				t.Errorf("native %v: the URL ended %q, want no space left on device after the 2s wait", native, got)
			}
		case <-time.After(time.Minute):
			t.Fatalf("native %v: the URL still waits for room after a minute, though the wait allowed is 2s", native)
		}
		mu.Lock()
		if requests > 10 {
			t.Errorf("native %v: the URL was fetched %d times in its 2s wait for room", native, requests)
		}
		mu.Unlock()
	}
}
