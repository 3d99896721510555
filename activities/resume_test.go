package activities

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// A resumed download is only ever the rest of the same body: a range that
// stops short, belongs to another body, or is counted in other bytes is
// dropped, and the whole body fetched again.

// dropAfter sends Content-Length: total, writes body[:n], then kills the connection.
func dropAfter(w http.ResponseWriter, etag string, body []byte, n int) {
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	_, _ = w.Write(body[:n])
	w.(http.Flusher).Flush()
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}

func (e *fetchEnv) hashOne(t *testing.T, it Fetched) Result {
	t.Helper()
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Items: []Fetched{it}})
	if err != nil {
		t.Fatalf("HashChunk: %v", err)
	}
	var hr HashChunkResult
	_ = v.Get(&hr)
	return hr.Results[0]
}

// A 206 that covers only part of the rest ("bytes N-M/T", M+1 < T) is not
// taken for the whole body.
func TestResumeRefusesAShortRange(t *testing.T) {
	body := randomBytes(11, SmallBody+1000) // over SmallBody: kept in a blob of its own, resumable
	var mu sync.Mutex
	var n int
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		ranges = append(ranges, r.Header.Get("Range")+" "+r.Header.Get("If-Range"))
		mu.Unlock()
		if k == 1 {
			dropAfter(w, `"v1"`, body, 400)
			return
		}
		if r.Header.Get("Range") == "" {
			w.Header().Set("ETag", `"v1"`)
			_, _ = w.Write(body)
			return
		}
		// A server (or CDN) that serves ranges in pieces of at most 200 bytes.
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 400-599/%d", len(body)))
		w.Header().Set("Content-Length", "200")
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(body[400:600])
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/x"), Concurrency: 1, Policy: quick})[0]
	r := e.hashOne(t, it)
	t.Logf("fetch: outcome=%q size=%d; hash: outcome=%s size=%d sha=%s", it.Outcome, it.Size, r.Outcome, r.Size, r.SHA256)
	if r.Outcome != OutcomeOK || r.SHA256 != hexSum(body) {
		t.Errorf("got %s, %d bytes, sha256 %s; want ok with the whole %d-byte body, %s", r.Outcome, r.Size, r.SHA256, len(body), hexSum(body))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 3 || ranges[1] != `bytes=400- "v1"` || ranges[2] != " " {
		t.Errorf("requests %q, want the whole body, the rest (bytes=400- if \"v1\"), then the whole body", ranges)
	}
}

// A server that does not honour If-Range answers 206 for a changed body:
// the Content-Range starts right but the total length and the ETag
// differ. The kept part of v1 is dropped, v2 fetched whole.
func TestResumeRefusesTheRestOfAnotherBody(t *testing.T) {
	v1 := randomBytes(12, SmallBody+1000)
	v2 := randomBytes(13, SmallBody+1500)
	var mu sync.Mutex
	var n int
	var ifRange string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		if k == 2 {
			ifRange = r.Header.Get("If-Range")
		}
		mu.Unlock()
		if k == 1 {
			dropAfter(w, `"v1"`, v1, 400)
			return
		}
		w.Header().Set("ETag", `"v2"`)
		if r.Header.Get("Range") == "" {
			_, _ = w.Write(v2)
			return
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 400-%d/%d", len(v2)-1, len(v2)))
		w.Header().Set("Content-Length", fmt.Sprint(len(v2)-400))
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(v2[400:])
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/x"), Concurrency: 1, Policy: quick})[0]
	r := e.hashOne(t, it)
	mixed := append(append([]byte{}, v1[:400]...), v2[400:]...)
	t.Logf("If-Range sent: %s; fetch outcome=%q size=%d; hash outcome=%s sha=%s", ifRange, it.Outcome, it.Size, r.Outcome, r.SHA256)
	if r.Outcome != OutcomeOK || r.SHA256 != hexSum(v2) {
		t.Errorf("got %s sha256 %s, want ok with v2 %s (a mix of v1 and v2: %v)", r.Outcome, r.SHA256, hexSum(v2), r.SHA256 == hexSum(mixed))
	}
	if ifRange != `"v1"` {
		t.Errorf("the second request had If-Range %q, want a resume validated by \"v1\"", ifRange)
	}
}

// An object stored with Content-Encoding: gzip (object-store metadata,
// the same strong ETag for every request, ranges of the stored bytes):
// the body is the bytes the server sends, never decompressed, so the kept
// part and the rest are counted in the same bytes.
func TestResumeOfAnEncodedBodyStaysInItsBytes(t *testing.T) {
	plain := bytes.Repeat([]byte("all work and no play makes jack a dull boy\n"), 20000)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.NoCompression) // big enough to cut mid-stream
	_, _ = zw.Write(plain)
	_ = zw.Close()
	stored := gz.Bytes()
	var mu sync.Mutex
	var n int
	var reqs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		reqs = append(reqs, fmt.Sprintf("Range=%q AE=%q", r.Header.Get("Range"), r.Header.Get("Accept-Encoding")))
		mu.Unlock()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("ETag", `"obj1"`)
		if k == 1 {
			dropAfter(w, `"obj1"`, stored, len(stored)/2)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(stored))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/o"), Concurrency: 1, Policy: quick})[0]
	r := e.hashOne(t, it)
	mu.Lock()
	t.Logf("requests: %q", reqs)
	mu.Unlock()
	t.Logf("fetch outcome=%q size=%d (plain %d, stored gzip %d); hash outcome=%s", it.Outcome, it.Size, len(plain), len(stored), r.Outcome)
	if r.Outcome != OutcomeOK || r.SHA256 != hexSum(stored) {
		t.Errorf("got %s, %d bytes; want ok with the %d bytes the server stores and sends", r.Outcome, r.Size, len(stored))
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{`Range="" AE=""`, fmt.Sprintf(`Range="bytes=%d-" AE=""`, len(stored)/2)}
	if len(reqs) != 2 || reqs[0] != want[0] || reqs[1] != want[1] {
		t.Errorf("requests %q, want %q: no compression asked, then the rest", reqs, want)
	}
}

// Last-Modified as the only validator, from a server (http.ServeContent)
// whose file is rewritten within the same second. RFC 9110 13.1.5: a
// client must not send If-Range with a date unless it is a strong
// validator (a second or more before Date), nor with a weak ETag. The
// fetch takes the new body whole.
func TestResumeNeedsAStrongValidator(t *testing.T) {
	for _, etag := range []string{"", `W/"weak"`} {
		t.Run("etag="+etag, func(t *testing.T) {
			v1 := randomBytes(21, 1000)
			v2 := randomBytes(22, 1000)
			mod := time.Now().Truncate(time.Second)
			var mu sync.Mutex
			var n int
			var ifRange string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				k := n
				if k == 2 {
					ifRange = r.Header.Get("If-Range")
				}
				mu.Unlock()
				if etag != "" {
					w.Header().Set("ETag", etag)
				}
				if k == 1 {
					w.Header().Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
					w.Header().Set("Date", mod.UTC().Format(http.TimeFormat)) // modified this very second
					w.Header().Set("Content-Length", "1000")
					_, _ = w.Write(v1[:400])
					w.(http.Flusher).Flush()
					if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
						conn.Close()
					}
					return
				}
				// the file was rewritten within the same second
				http.ServeContent(w, r, "", mod, bytes.NewReader(v2))
			}))
			defer srv.Close()
			e := newFetchEnv(t, 0)
			it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/f"), Concurrency: 1, Policy: quick})[0]
			r := e.hashOne(t, it)
			mixed := append(append([]byte{}, v1[:400]...), v2[400:]...)
			t.Logf("If-Range sent: %q; fetch outcome=%q size=%d; hash outcome=%s mixed=%v", ifRange, it.Outcome, it.Size, r.Outcome, r.SHA256 == hexSum(mixed))
			if ifRange != "" {
				t.Errorf("If-Range %q sent with no strong validator", ifRange)
			}
			if r.Outcome != OutcomeOK || r.SHA256 != hexSum(v2) {
				t.Errorf("got %s sha256 %s, want ok with v2 (a mix: %v)", r.Outcome, r.SHA256, r.SHA256 == hexSum(mixed))
			}
		})
	}
}
