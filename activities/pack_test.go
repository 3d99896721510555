package activities

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
)

func (e *fetchEnv) hashAll(t *testing.T, items []Fetched) (*HashChunkResult, error) {
	t.Helper()
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Prefix: "batches/r", Items: items})
	if err != nil {
		return nil, err
	}
	var hr HashChunkResult
	return &hr, v.Get(&hr)
}

// Small bodies of a chunk go into one pack file, each at its own offset,
// and hash to what the site sent; a body of unknown length that outgrows
// SmallBody goes to a blob of its own. Only the pack and that blob are
// created.
func TestSmallBodiesShareTheChunksPack(t *testing.T) {
	bodies := map[string][]byte{}
	for i := range 40 {
		bodies[fmt.Sprintf("/p%d", i)] = randomBytes(uint64(100+i), 100+i*997)
	}
	bodies["/empty"] = nil
	bodies["/chunked-large"] = randomBytes(7, SmallBody+12345)
	bodies["/chunked-small"] = randomBytes(8, 3000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := bodies[r.URL.Path]
		if strings.HasPrefix(r.URL.Path, "/chunked") {
			// No Content-Length: the size is learnt as the body comes.
			for len(b) > 0 {
				n := min(len(b), 1000)
				_, _ = w.Write(b[:n])
				w.(http.Flusher).Flush()
				b = b[n:]
			}
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	var paths, urls []string
	for p := range bodies {
		paths = append(paths, p)
		urls = append(urls, srv.URL+p)
	}
	e := newFetchEnv(t, 0)
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", Chunk: 3, URLs: chunkOf(urls...), Concurrency: 8, Policy: quick})
	packs := map[string]bool{}
	for i, it := range items {
		switch {
		case it.Outcome != "":
			t.Fatalf("%s: %+v", paths[i], it)
		case paths[i] == "/chunked-large":
			if it.Off != nil || !strings.HasPrefix(it.Blob, BodyKey(WorkPrefix("batches/r", 0), i)+".") {
				t.Errorf("a large body of unknown length went to %s (offset %v), want a blob of its own", it.Blob, it.Off)
			}
		default:
			if it.Off == nil || !strings.HasPrefix(it.Blob, WorkPrefix("batches/r", 0)+"/pack.") {
				t.Errorf("%s: in %s (offset %v), want the chunk's pack", paths[i], it.Blob, it.Off)
			}
			packs[it.Blob] = true
		}
	}
	if len(packs) != 1 {
		t.Errorf("%d packs, want one for the chunk attempt", len(packs))
	}
	var files []string
	for _, f := range e.files(t) {
		if !strings.HasSuffix(f, ".batchfetch-store") {
			files = append(files, f)
		}
	}
	if len(files) != 2 {
		t.Errorf("files created: %q, want the pack and the large body's blob", files)
	}
	hr, err := e.hashAll(t, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range hr.Results {
		if want := hexSum(bodies[paths[i]]); r.Outcome != OutcomeOK || r.SHA256 != want || r.Size != int64(len(bodies[paths[i]])) {
			t.Errorf("%s: %+v, want ok %s", paths[i], r, want)
		}
	}
}

// A pack cut short, or with bytes changed, never yields an ok result:
// the hash step refuses it as it does a changed blob.
func TestHashRefusesAPackThatChanged(t *testing.T) {
	a, b := randomBytes(1, 5000), randomBytes(2, 7000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			_, _ = w.Write(a)
			return
		}
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	for name, damage := range map[string]func(path string){
		"cut short": func(p string) { _ = os.Truncate(p, int64(len(a)+len(b)-1)) },
		"a byte flipped": func(p string) {
			f, _ := os.OpenFile(p, os.O_RDWR, 0)
			defer f.Close()
			buf := make([]byte, 1)
			_, _ = f.ReadAt(buf, 4000)
			buf[0] ^= 1
			_, _ = f.WriteAt(buf, 4000)
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newFetchEnv(t, 0)
			items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/a", srv.URL+"/b"), Concurrency: 1, Policy: quick})
			if items[0].Off == nil || items[0].Blob != items[1].Blob {
				t.Fatalf("not packed: %+v", items)
			}
			damage(filepath.Join(e.dir, filepath.FromSlash(items[0].Blob)))
			_, err := e.hashAll(t, items)
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) || appErr.Type() != IntegrityErrorType {
				t.Fatalf("got %v, want %s", err, IntegrityErrorType)
			}
		})
	}
}

// A chunk retried from its checkpoint keeps the URLs the first attempt
// finished, which point into the first attempt's pack, and writes the
// rest to a pack of its own: both hash right.
func TestARetriedChunkReadsTheFirstAttemptsPack(t *testing.T) {
	first := randomBytes(3, 2000)
	second := randomBytes(4, 3000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			_, _ = w.Write(first)
			return
		}
		_, _ = w.Write(second)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	done := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/first"), Concurrency: 1, Policy: quick})[0]
	// The second attempt starts from a checkpoint that has /first done.
	e.env.SetHeartbeatDetails(FetchCheckpoint{Done: []Fetched{done}})
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/first", srv.URL+"/second"), Concurrency: 1, Policy: quick})
	if items[0].Blob != done.Blob || items[1].Blob == done.Blob || items[1].Off == nil {
		t.Fatalf("items %+v, want /first from the first pack and /second in a new one", items)
	}
	hr, err := e.hashAll(t, items)
	if err != nil {
		t.Fatal(err)
	}
	if hr.Results[0].SHA256 != hexSum(first) || hr.Results[1].SHA256 != hexSum(second) || hr.OK != 2 {
		t.Errorf("results %+v", hr.Results)
	}
}

// peakCPU records the most bodies hashed at once.
type peakCPU struct {
	mu        sync.Mutex
	now, peak int
}

func (p *peakCPU) URLDone(string)               {}
func (p *peakCPU) Fetched(int64, time.Duration) {}
func (p *peakCPU) Hashed(int64, time.Duration)  {}
func (p *peakCPU) SlotsInUse(pool string, d int) {
	if pool != "cpu" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.now += d
	p.peak = max(p.peak, p.now)
}

// Hash activities may be open side by side, but the bodies they hash at
// once stay within the worker's CPU slots: the tokens, not the activity
// count, bound the processor work.
func TestHashingStaysWithinTheCPUSlots(t *testing.T) {
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var items [4][]Fetched
	for c := range items {
		for i := range 3 {
			body := randomBytes(uint64(c*10+i), 3<<20)
			key := fmt.Sprintf("b/%d-%d", c, i)
			w, _ := store.Create(context.Background(), key)
			_, _ = w.Write(body)
			_ = w.Commit()
			crc := crc32.Checksum(body, castagnoli)
			items[c] = append(items[c], Fetched{Index: i, URL: "http://x/", Blob: key, Size: int64(len(body)), CRC32C: &crc})
		}
	}
	obs := &peakCPU{}
	h := &Hasher{Store: store, Observer: obs, CPU: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	for c := range items {
		wg.Go(func() {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(h)
			v, err := env.ExecuteActivity(h.HashChunk, HashChunkRequest{Items: items[c]})
			var hr HashChunkResult
			if err != nil || v.Get(&hr) != nil || hr.OK != 3 {
				t.Errorf("chunk %d: %v %+v", c, err, hr)
			}
		})
	}
	wg.Wait()
	if obs.peak != 1 {
		t.Errorf("%d bodies hashed at once with one CPU slot", obs.peak)
	}
}

// flakyPacks is a Dir whose packs fail as told.
type flakyPacks struct {
	*blobstore.Dir
	mu                  sync.Mutex
	failCreates         int
	failSync, failClose bool
	creates             int
}

type flakyPack struct {
	blobstore.Pack
	s *flakyPacks
}

func (f *flakyPacks) CreatePack(ctx context.Context, key string) (blobstore.Pack, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates++
	if f.failCreates > 0 {
		f.failCreates--
		return nil, errors.New("too many open files")
	}
	p, err := f.Dir.CreatePack(ctx, key)
	if err != nil {
		return nil, err
	}
	return &flakyPack{Pack: p, s: f}, nil
}

func (p *flakyPack) Sync() (int64, error) {
	if p.s.failSync {
		return 0, errors.New("input/output error")
	}
	return p.Pack.Sync()
}

func (p *flakyPack) Close() error {
	err := p.Pack.Close()
	if p.s.failClose {
		return errors.New("input/output error")
	}
	return err
}

func smallSite(t *testing.T, n int) (*httptest.Server, []string, map[string][]byte) {
	bodies := map[string][]byte{}
	var urls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(bodies[r.URL.Path]) }))
	t.Cleanup(srv.Close)
	for i := range n {
		p := fmt.Sprintf("/s%d", i)
		bodies[p] = randomBytes(uint64(500+i), 1000+i)
		urls = append(urls, srv.URL+p)
	}
	return srv, urls, bodies
}

// A pack that cannot be created costs that body its pack, not its
// result: it is stored on its own, and the next body starts a new pack.
func TestAFailedPackFallsBackToABlobOfItsOwn(t *testing.T) {
	_, urls, bodies := smallSite(t, 10)
	e := newFetchEnv(t, 0)
	store := &flakyPacks{Dir: e.store, failCreates: 1}
	e.f.Store, e.h.Store = store, store
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(urls...), Concurrency: 1, Policy: quick})
	own, packed := 0, 0
	for _, it := range items {
		if it.Off == nil {
			own++
		} else {
			packed++
		}
	}
	if own != 1 || packed != 9 || store.creates != 2 {
		t.Errorf("%d bodies on their own, %d packed, %d packs tried; want 1, 9, 2", own, packed, store.creates)
	}
	hr, err := e.hashAll(t, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range hr.Results {
		if r.Outcome != OutcomeOK || r.SHA256 != hexSum(bodies[fmt.Sprintf("/s%d", i)]) {
			t.Errorf("result %d: %+v", i, r)
		}
	}
}

// A checkpoint lists a packed body only once its bytes are synced; a pack
// that cannot be closed fails the attempt instead of reporting bodies
// that may not all be there.
func TestPackedBodiesCountOnlyOnceOnDisk(t *testing.T) {
	one := int64(0)
	it := Fetched{Blob: "p/1", Off: &one, Size: 10}
	if !unsynced(it, map[string]int64{"p/1": 9}) || unsynced(it, map[string]int64{"p/1": 10}) || unsynced(it, map[string]int64{"p/0": 0}) {
		t.Error("unsynced: wrong on the boundary or on another attempt's pack")
	}

	_, urls, _ := smallSite(t, 5)
	e := newFetchEnv(t, 0)
	store := &flakyPacks{Dir: e.store, failSync: true}
	c := &chunkPack{ctx: context.Background(), store: store, work: WorkPrefix("batches/r", 0)}
	key, off, err := c.append([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if synced := c.sync(); !unsynced(Fetched{Blob: key, Off: &off, Size: 5}, synced) {
		t.Errorf("a body whose pack failed to sync counts as on disk: %v", synced)
	}
	store.failSync = false
	if synced := c.sync(); unsynced(Fetched{Blob: key, Off: &off, Size: 5}, synced) {
		t.Errorf("a synced body does not count: %v", synced)
	}
	_ = c.close()

	store.failClose = true
	e.f.Store = store
	_, err = e.env.ExecuteActivity(e.f.FetchChunk, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(urls...), Concurrency: 2, Policy: quick})
	if err == nil || !strings.Contains(err.Error(), "may be incomplete") {
		t.Errorf("a pack that failed to close: %v, want the attempt to fail", err)
	}
}
