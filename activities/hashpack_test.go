//go:build cluster

package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
)

// s3Env is a fetchEnv on a real S3 server, reached through a proxy that
// counts the GET requests.
func s3Env(t *testing.T) (*fetchEnv, *s3test.Server, *atomic.Int64) {
	t.Helper()
	srv := s3test.Start(t)
	srv.SetEnv(t)
	var gets atomic.Int64
	to := &url.URL{Scheme: "http", Host: srv.Addr}
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		if r.In.Method == http.MethodGet {
			gets.Add(1)
		}
		r.SetURL(to)
		r.Out.Host = r.In.Host // what the client signed
	}})
	t.Cleanup(proxy.Close)
	store, err := blobstore.Open(context.Background(), srv.URL(s3test.Bucket, strings.TrimPrefix(proxy.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	f, h := &Fetcher{Client: client, Store: store}, &Hasher{Store: store}
	env.RegisterActivity(f)
	env.RegisterActivity(h)
	return &fetchEnv{env: env, f: f, h: h}, srv, &gets
}

// On S3 a chunk's small bodies go into one object, its pack (or a few,
// each S3PackSize bytes), and its hash reads them in one request (or one
// per window of a pack when the pack is larger than one), each body
// hashing to what the site sent.
func TestS3SmallBodiesArePackedAndReadAPackAtATime(t *testing.T) {
	bodies := map[string][]byte{}
	var paths, urls []string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bodies[r.URL.Path])
	}))
	defer site.Close()
	for i := range 40 {
		p := fmt.Sprintf("/p%d", i)
		bodies[p] = randomBytes(uint64(i), 1000+i*487)
		paths, urls = append(paths, p), append(urls, site.URL+p)
	}
	e, srv, gets := s3Env(t)
	for _, tc := range []struct {
		window, packSize int64
	}{{packWindow, blobstore.S3PackSize}, {64 << 10, blobstore.S3PackSize}, {packWindow, 100 << 10}} {
		t.Run(fmt.Sprintf("window %d pack size %d", tc.window, tc.packSize), func(t *testing.T) {
			defer func(w, p int64) { packWindow, blobstore.S3PackSize = w, p }(packWindow, blobstore.S3PackSize)
			packWindow, blobstore.S3PackSize = tc.window, tc.packSize
			window := tc.window
			prefix := fmt.Sprintf("batches/w%d-%d", tc.window, tc.packSize)
			items := e.fetch(t, FetchChunkRequest{Prefix: prefix, URLs: chunkOf(urls...), Concurrency: 8, Policy: quick})
			var size int64
			packs := map[string]bool{}
			for i, it := range items {
				if it.Outcome != "" || it.Off == nil || !strings.HasPrefix(it.Blob, prefix+"/") {
					t.Fatalf("%s: %+v, want it in a pack of the chunk's", paths[i], it)
				}
				size += it.Size
				packs[it.Blob] = true
			}
			// A pack takes bodies until it is full: the last one it takes
			// may be as large as a small body can be.
			if want := int(size/(tc.packSize) + 1); len(packs) > want {
				t.Errorf("%d bytes in %d packs of %d bytes, want %d at most", size, len(packs), tc.packSize, want)
			}
			keys := slices.DeleteFunc(srv.Keys(t, s3test.Bucket), func(k string) bool { return !strings.HasPrefix(k, prefix+"/") })
			if len(keys) != len(packs) {
				t.Errorf("the chunk wrote %q, want only its packs", keys)
			}
			before := gets.Load()
			v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Prefix: prefix, Items: items})
			if err != nil {
				t.Fatal(err)
			}
			var hr HashChunkResult
			if err := v.Get(&hr); err != nil {
				t.Fatal(err)
			}
			for i, r := range hr.Results {
				if want := hexSum(bodies[paths[i]]); r.Outcome != OutcomeOK || r.SHA256 != want {
					t.Errorf("%s: %+v, want ok %s", paths[i], r, want)
				}
			}
			// Bodies hash in URL order, which is not the pack's (the
			// order they finished in): a window may be read again for
			// a body before it, but never more than once a body.
			most := int64(len(items))
			if size <= window {
				most = int64(len(packs)) // each read whole
			}
			if n := gets.Load() - before; n > most {
				t.Errorf("the hash read %d bytes of packs in %d requests, want at most %d", size, n, most)
			}
		})
	}
}
