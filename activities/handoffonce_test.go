package activities

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/politeness"
)

// fetchAllChunks fetches tasks as the workflow does a chunk that hands
// over early: one fetch after another (each a new activity on the same
// worker), each taking up the URLs the one before left, until every URL
// has its word.
func fetchAllChunks(t *testing.T, f *Fetcher, req FetchChunkRequest) []Fetched {
	t.Helper()
	var all []Fetched
	rest := req.URLs
	for fetches := 0; len(rest) > 0; fetches++ {
		if fetches == 2*len(req.URLs) {
			t.Fatalf("%d fetches and %d URLs still left", fetches, len(rest))
		}
		var s testsuite.WorkflowTestSuite
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(f)
		r := req
		r.URLs = rest
		items := runPerHostChunk(t, env, f, r)
		if len(items) == 0 {
			t.Fatalf("fetch %d handed over no URL of the %d left", fetches+1, len(rest))
		}
		all = append(all, items...)
		rest = rest[len(items):]
	}
	return all
}

// TestPerHostCutHandsOverAURL: a fetch whose first URL's host is paused
// while other hosts' bodies fill its budget waits for that URL and hands
// it over, rather than cutting before it with nothing to hand over.
func TestPerHostCutHandsOverAURL(t *testing.T) {
	paused, other := newPacedHost(t, 21), newPacedHost(t, 22)
	tasks := []URLTask{{Index: 0, URL: paused.URL + "/p/0"}}
	for i := 1; i < 4; i++ {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/p/%d", other.URL, i)})
	}
	env, f := newPerHostEnv(t, 1)
	const batch = "batches/cut0"
	// As after a 429 with Retry-After: 1 in an earlier chunk of the batch.
	f.Limits.Pause(batch, hostOf(paused.URL), time.Now().Add(time.Second))
	p := quick
	p.PerHost = &politeness.Rule{MaxInFlight: 4}
	items := runPerHostChunk(t, env, f, FetchChunkRequest{Prefix: batch, URLs: tasks, Concurrency: 4, Policy: p, Budget: 1})
	if len(items) == 0 {
		t.Fatal("the fetch handed over no URL")
	}
	for i, it := range items {
		if it.Index != i || it.Outcome != "" || it.Blob == "" {
			t.Errorf("item %d: %+v; want URL %d's body", i, it, i)
		}
	}
}

// TestPerHostPostSentOnce: in a batch with a per-host rule whose fetches
// hand over early, a POST (which may not be retried) of a ready host is
// never sent past a cut and again by the next fetch: the server sees
// exactly one POST per URL, and each ends with its body.
func TestPerHostPostSentOnce(t *testing.T) {
	slow, posts := newPacedHost(t, 23), newPacedHost(t, 24)
	slow.delay = 100 * time.Millisecond
	var tasks []URLTask
	for i := range 4 {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/get/%d", slow.URL, i)})
	}
	post := &Request{Method: http.MethodPost, Body: &Body{Text: "order"}}
	for i := 4; i < 12; i++ {
		tasks = append(tasks, URLTask{Index: i, URL: fmt.Sprintf("%s/post/%d", posts.URL, i), R: post})
	}
	_, f := newPerHostEnv(t, 1)
	p := quick
	p.PerHost = &politeness.Rule{MaxInFlight: 1}
	items := fetchAllChunks(t, f, FetchChunkRequest{Prefix: "batches/once", URLs: tasks, Concurrency: 8, Policy: p, Budget: 1})
	if len(items) != len(tasks) {
		t.Fatalf("%d results, want %d", len(items), len(tasks))
	}
	for i, it := range items {
		if it.Index != i || it.Outcome != "" || it.Blob == "" {
			t.Errorf("result %d: %+v; want URL %d's body", i, it, i)
		}
	}
	posts.mu.Lock()
	sent := map[string]int{}
	for _, path := range posts.paths {
		sent[path]++
	}
	posts.mu.Unlock()
	for i := 4; i < 12; i++ {
		if n := sent[fmt.Sprintf("/post/%d", i)]; n != 1 {
			t.Errorf("POST /post/%d sent %d times, want once", i, n)
		}
	}
}

// saysFull is secondFull that closes full once it has refused a body.
type saysFull struct {
	*secondFull
	full chan struct{}
	once sync.Once
}

func (d *saysFull) Create(ctx context.Context, key string) (blobstore.Writer, error) {
	w, err := d.secondFull.Create(ctx, key)
	d.told(err)
	return w, err
}

func (d *saysFull) CreateResumable(ctx context.Context, key string) (blobstore.PausableWriter, error) {
	w, err := d.secondFull.CreateResumable(ctx, key)
	d.told(err)
	return w, err
}

func (d *saysFull) told(err error) {
	if err != nil {
		d.once.Do(func() { close(d.full) })
	}
}

// TestFullDiskCutNeverResendsAPost: a URL that meets a full blob disk
// while a POST after it is under way waits for room rather than leaving
// itself (and the POST) to the next fetch: the POST is sent once.
func TestFullDiskCutNeverResendsAPost(t *testing.T) {
	e := newFetchEnv(t, 0)
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &saysFull{secondFull: &secondFull{Dir: d, f: e.f}, full: make(chan struct{})}
	e.f.Store = store
	var mu sync.Mutex
	posts := 0
	posted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a": // its body is the one held when /b meets the full disk
			select {
			case <-posted:
			case <-r.Context().Done():
				return
			}
		case "/c": // under way while /b meets the full disk
			mu.Lock()
			posts++
			if posts == 1 {
				close(posted)
			}
			mu.Unlock()
			select {
			case <-store.full:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 100<<10))
	}))
	defer srv.Close()
	tasks := chunkOf(srv.URL+"/a", srv.URL+"/b", srv.URL+"/c")
	tasks[2].R = &Request{Method: http.MethodPost, Body: &Body{Text: "order"}}
	items := fetchAllChunks(t, e.f, FetchChunkRequest{Prefix: "batches/r", URLs: tasks, Concurrency: 3, Policy: quick, Budget: 1 << 30})
	for i, it := range items {
		if it.Index != i || it.Outcome != "" || it.Blob == "" {
			t.Errorf("result %d: %+v; want URL %d's body", i, it, i)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if posts != 1 {
		t.Errorf("the POST was sent %d times, want once", posts)
	}
}
