package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
)

// s3Compare runs the same batches on two worker processes of their own
// with their default flags: one with its blobs in a directory on disk,
// one with --blob-url on a real S3 server (SeaweedFS's weed mini on
// loopback, internal/s3test). The S3 worker reaches the server through a
// proxy that counts its requests by kind; the bench's own reads and
// writes (the URL list, the results) go to the server directly and are
// not counted.
func s3Compare(c *config, st *stack, s *site) error {
	side, err := startS3Side(c, st)
	if err != nil {
		return err
	}
	defer side.stop()
	dirW, err := startProcWorker(c, st, "s3-dir", filepath.Join(st.dir, "blobs"))
	if err != nil {
		return err
	}
	defer dirW.stop()
	fmt.Printf("\n== s3: the directory store (%s) against S3 (SeaweedFS weed mini %s on %s, through a request-counting proxy on %s)\n",
		filepath.Join(st.dir, "blobs"), s3test.Version, side.srv.Addr, side.proxy.addr)
	fmt.Printf("  (%s)\n  (%s)\n", dirW.describe(), side.w.describe())
	for _, w := range []*procWorker{dirW, side.w} {
		if _, err := runBatch(st, w.target(), s.smallURLs(200, "s3warm-"+w.queue), c.inFlight, c.timeout, false); err != nil {
			return fmt.Errorf("warm-up on %s: %w", w.queue, err)
		}
	}

	if err := s3Small(c, st, s, dirW, side); err != nil || c.s3Large == 0 {
		return err
	}
	return s3Large(c, st, s, dirW, side)
}

// s3Small compares the stores on small pages: URLs/s, and on S3 the
// objects and requests per URL.
func s3Small(c *config, st *stack, s *site, dirW *procWorker, side *s3Side) error {
	fmt.Printf("small pages: %d URLs of 2-8 KiB answering after %v, max_in_flight %d\n", c.s3URLs, c.latency, c.inFlight)
	d, o, err := s3Both(c, st, dirW, side, func(tag string) []string { return sizedURLs(s, c.s3URLs, tag) })
	if err != nil {
		return err
	}
	rd, rs := float64(c.s3URLs)/d.wall.Seconds(), float64(c.s3URLs)/o.wall.Seconds()
	fmt.Printf("  directory store %8.0f URLs/s  (%v); worker CPU %s per URL\n", rd, d.wall.Round(time.Millisecond), perURL(d.workerCPU, c.s3URLs))
	fmt.Printf("  S3              %8.0f URLs/s  (%v); worker CPU %s per URL, S3 server CPU %s per URL\n", rs, o.wall.Round(time.Millisecond), perURL(o.workerCPU, c.s3URLs), perURL(o.serverCPU, c.s3URLs))
	fmt.Printf("  ratio S3/dir    %8.2f  (goal: at least 0.7)\n", rs/rd)
	fmt.Printf("  S3 per URL: %s\n", o.reqs.per(c.s3URLs))
	fmt.Printf("  left in the bucket after the batch: %s\n", o.left)
	return nil
}

// s3Large compares the stores on large bodies: MB/s, and on S3 the
// objects and requests per body.
func s3Large(c *config, st *stack, s *site, dirW *procWorker, side *s3Side) error {
	size := c.s3LargeSize
	fmt.Printf("large bodies: %d of %s, max_in_flight %d\n", c.s3Large, mib(size), c.inFlight)
	d, o, err := s3Both(c, st, dirW, side, func(tag string) []string { return s.largeURLs(c.s3Large, size, tag) })
	if err != nil {
		return err
	}
	total := float64(int64(c.s3Large) * size)
	md, ms := total/d.wall.Seconds()/1e6, total/o.wall.Seconds()/1e6
	fmt.Printf("  directory store %8.0f MB/s  (%v); worker CPU %s per body\n", md, d.wall.Round(time.Millisecond), perURL(d.workerCPU, c.s3Large))
	fmt.Printf("  S3              %8.0f MB/s  (%v); worker CPU %s per body, S3 server CPU %s per body\n", ms, o.wall.Round(time.Millisecond), perURL(o.workerCPU, c.s3Large), perURL(o.serverCPU, c.s3Large))
	fmt.Printf("  ratio S3/dir    %8.2f\n", ms/md)
	fmt.Printf("  S3 per body: %s\n", o.reqs.per(c.s3Large))
	fmt.Printf("  left in the bucket after the batch: %s\n", o.left)
	return nil
}

// s3Both runs a batch of urls(tag) on the directory store, then another
// (other URLs, the same bodies) on S3.
func s3Both(c *config, st *stack, dirW *procWorker, side *s3Side, urls func(tag string) []string) (dir, s3 s3Outcome, err error) {
	if dir, err = s3Run(st, dirW, nil, urls("s3d"), c); err != nil {
		return dir, s3, err
	}
	s3, err = s3Run(st, side.w, side, urls("s3s"), c)
	return dir, s3, err
}

// s3Side is the S3 server, the counting proxy in front of it, and the
// worker process whose --blob-url points at the proxy.
type s3Side struct {
	srv   *s3test.Server
	proxy *s3Counter
	w     *procWorker
	stop  func()
}

func startS3Side(c *config, st *stack) (*s3Side, error) {
	dir := filepath.Join(st.dir, "s3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	srv, err := s3test.New(dir)
	if err != nil {
		return nil, err
	}
	side := &s3Side{srv: srv}
	var stops []func()
	side.stop = func() {
		for _, f := range slices.Backward(stops) {
			f()
		}
	}
	stops = append(stops, atExit(srv.Stop))
	if side.proxy, err = startS3Counter(srv.Addr); err != nil {
		side.stop()
		return nil, err
	}
	stops = append(stops, side.proxy.close)
	// The bench's own client (URL lists, results) reads the credentials
	// from the environment, as the worker does.
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			side.stop()
			return nil, err
		}
	}
	store, err := blobstore.Open(context.Background(), srv.URL(s3test.Bucket, ""))
	if err != nil {
		side.stop()
		return nil, err
	}
	side.w, err = startProcWorkerOn(c, st, "s3-s3", store, []string{"--blob-url", srv.URL(s3test.Bucket, side.proxy.addr)}, srv.Env())
	if err != nil {
		side.stop()
		return nil, err
	}
	stops = append(stops, side.w.stop)
	return side, nil
}

// s3Outcome is one batch's wall time and CPU, and on S3 the requests the
// worker made and what the bucket held afterwards.
type s3Outcome struct {
	wall                 time.Duration
	workerCPU, serverCPU time.Duration
	reqs                 s3Counts
	left                 string
}

// s3Run runs urls as one batch on w (on S3 when side is not nil) and
// fails unless every URL ends ok.
func s3Run(st *stack, w *procWorker, side *s3Side, urls []string, c *config) (s3Outcome, error) {
	var serverPid int
	if side != nil {
		serverPid = side.srv.Pid()
		side.proxy.reset()
	}
	w0, s0 := procCPU(w.pid()), procCPU(serverPid)
	o, err := runBatch(st, w.target(), urls, c.inFlight, c.timeout, false)
	out := s3Outcome{wall: o.wall, workerCPU: procCPU(w.pid()) - w0}
	if err == nil && o.failed > 0 {
		err = fmt.Errorf("%d of %d URLs failed: %v", o.failed, len(urls), o.errs)
	}
	if err != nil {
		if log := w.lastLog(5); log != "" {
			err = fmt.Errorf("%w; the worker's last words:\n%s", err, log)
		}
		return out, fmt.Errorf("a batch on %s: %w", w.queue, err)
	}
	if side != nil {
		out.serverCPU = procCPU(serverPid) - s0
		out.reqs = side.proxy.counts()
		keys, err := side.srv.List(s3test.Bucket)
		if err != nil {
			return out, err
		}
		out.left = leftOver(keys)
	}
	return out, nil
}

// leftOver says how many objects and unfinished uploads a bucket holds,
// with the first few keys.
func leftOver(keys []string) string {
	if len(keys) == 0 {
		return "nothing"
	}
	return fmt.Sprintf("%d keys (%s)", len(keys), strings.Join(keys[:min(3, len(keys))], ", "))
}

// sizedURLs are n pages of 2 to 8 KiB, spread evenly, as late as the
// small pages.
func sizedURLs(s *site, n int, tag string) []string {
	urls := make([]string, n)
	for i := range urls {
		size := 2048 + (i*2654435761)%(6*1024+1)
		urls[i] = fmt.Sprintf("%s/sized/%s/%d?size=%d", s.base, tag, i, size)
	}
	return urls
}

// s3Counter is a reverse proxy on 127.0.0.1 in front of an S3 server that
// counts the requests through it by operation. It leaves the Host header
// as the client sent it: that is what the client signed.
type s3Counter struct {
	addr string
	srv  *http.Server
	mu   sync.Mutex
	n    s3Counts
}

// s3Counts are requests by operation ("PUT object", "GET", ...): how
// many, and how long they took in all (from the proxy's reading the
// request to the server's whole answer).
type s3Counts map[string]*s3Op

type s3Op struct {
	n    int
	took time.Duration
}

func startS3Counter(target string) (*s3Counter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	to := &url.URL{Scheme: "http", Host: target}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(to)
			r.Out.Host = r.In.Host
		},
		// As many idle connections as requests at once: the worker's
		// keep-alive connections map onto the server's.
		Transport: &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: 10000, IdleConnTimeout: time.Minute, DisableCompression: true},
	}
	p := &s3Counter{addr: l.Addr().String(), n: s3Counts{}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, began := s3Operation(r), time.Now()
		rp.ServeHTTP(w, r)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.n[op] == nil {
			p.n[op] = &s3Op{}
		}
		p.n[op].n++
		p.n[op].took += time.Since(began)
	})}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *s3Counter) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = s3Counts{}
}

func (p *s3Counter) counts() s3Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.n
	p.n = s3Counts{}
	return n
}

func (p *s3Counter) close() { _ = p.srv.Close() }

// s3Operation names a request's S3 operation from its method, path and
// query (path-style addressing: /bucket/key).
func s3Operation(r *http.Request) string {
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	bucketOnly := !strings.Contains(strings.Trim(r.URL.Path, "/"), "/")
	switch r.Method {
	case http.MethodPut:
		switch {
		case has("partNumber"):
			return "PUT part"
		case r.Header.Get("X-Amz-Copy-Source") != "":
			return "PUT copy"
		}
		return "PUT object"
	case http.MethodPost:
		switch {
		case has("uploads"):
			return "POST create upload"
		case has("uploadId"):
			return "POST complete upload"
		case has("delete"):
			return "POST delete objects"
		}
	case http.MethodGet:
		switch {
		case has("uploadId"):
			return "LIST parts"
		case has("uploads"):
			return "LIST uploads"
		case bucketOnly:
			return "LIST objects"
		}
		return "GET"
	case http.MethodDelete:
		if has("uploadId") {
			return "DELETE upload"
		}
		return "DELETE object"
	case http.MethodHead:
		return "HEAD"
	}
	return r.Method + " other"
}

// per says, per unit (URL, body), how many objects were written (put,
// copied, or completed from parts) and how many requests of each kind
// were made (with the mean time one took).
func (n s3Counts) per(units int) string {
	count := func(op string) int {
		if o := n[op]; o != nil {
			return o.n
		}
		return 0
	}
	total := 0
	for op := range n {
		total += count(op)
	}
	written := count("PUT object") + count("PUT copy") + count("POST complete upload")
	f := func(v int) string { return fmt.Sprintf("%.3f", float64(v)/float64(units)) }
	parts := []string{}
	for _, op := range slices.Sorted(maps.Keys(n)) {
		o := n[op]
		parts = append(parts, fmt.Sprintf("%s %s (%.1f ms)", op, f(o.n), float64(o.took.Microseconds())/1000/float64(o.n)))
	}
	return fmt.Sprintf("%s objects written; %s requests (%d in all): %s", f(written), f(total), total, strings.Join(parts, ", "))
}
