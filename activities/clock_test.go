package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.uber.org/goleak"
)

// hangingDNS swaps the default resolver for one whose server never answers.
func hangingDNS(t *testing.T) { hangingDNSTraced(t, true) }

// hangingDNSTraced: traced=false dials the DNS server without the
// request's trace, as the cgo/libc resolver (or macOS's) does: no
// ConnectStart fires for the lookup.
func hangingDNSTraced(t *testing.T, traced bool) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		if !traced {
			dl, ok := ctx.Deadline()
			c2 := context.Background()
			if ok {
				var cancel context.CancelFunc
				c2, cancel = context.WithDeadline(c2, dl)
				defer cancel()
			}
			ctx = c2
		}
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
}

// A host name whose DNS never answers (a resolver on 127.0.0.1 that
// swallows queries and dials without the request's trace, as a system
// resolver does): the lookup is part of the attempt, bounded by its clock.
func TestAttemptClockCoversTheLookup(t *testing.T) {
	hangingDNSTraced(t, false)
	e := newFetchEnv(t, 0)
	p := Policy{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 1}
	start := time.Now()
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf("http://hang.example.com:80/"), Concurrency: 1, Policy: p})[0]
	took := time.Since(start)
	t.Logf("outcome %q error %q after %v", it.Outcome, it.Error, took)
	if took > 2*time.Second || it.Outcome != OutcomeTimeout {
		t.Errorf("attempt_timeout 300ms: took %v, outcome %q (%q); want an attempt timeout within ~300ms", took, it.Outcome, it.Error)
	}
}

// listenNoAccept returns an address whose accept queue is full: a further
// connect's SYN is dropped and the dial hangs.
func listenNoAccept(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	port := sa.(*syscall.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// fill the queue
	for i := 0; i < 4; i++ {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	if c, err := d.Dial("tcp", addr); err == nil {
		c.Close()
		t.Skip("cannot make a hanging dial here")
	}
	return addr
}

// A dial that hangs (a full accept queue on 127.0.0.1): attempt 1 times
// out at attempt_timeout, and its dial, which net/http detaches from the
// request, ends with it instead of holding the host's only connection slot
// for DialTimeout while attempt 2 waits with its clock stopped.
func TestTimedOutAttemptsDialEndsWithIt(t *testing.T) {
	addr := listenNoAccept(t)
	e := newFetchEnv(t, 0)
	c, err := NewHTTPClient(ClientConfig{MaxConnsPerHost: 1, Guard: Guard{Allow: []string{"127.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	e.f.Client = c
	p := Policy{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}
	start := time.Now()
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf("http://" + addr + "/"), Concurrency: 1, Policy: p})[0]
	took := time.Since(start)
	t.Logf("outcome %q attempts %d error %q after %v", it.Outcome, it.Attempts, it.Error, took)
	if took > 3*time.Second {
		t.Errorf("2 attempts of 300ms took %v", took)
	}
}

// A server that accepts but never sends headers: bounded by attempt_timeout.
func TestAttemptClockWhenNoHeadersCome(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	e := newFetchEnv(t, 0)
	p := Policy{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}
	start := time.Now()
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf("http://" + ln.Addr().String() + "/"), Concurrency: 1, Policy: p})[0]
	took := time.Since(start)
	t.Logf("outcome %q attempts %d error %q after %v", it.Outcome, it.Attempts, it.Error, took)
	if it.Outcome != OutcomeTimeout || it.Attempts != 2 || took > 2*time.Second {
		t.Errorf("got %q/%d in %v", it.Outcome, it.Attempts, took)
	}
}

// Redirect to a host whose dial hangs: the clock runs since the first hop.
func TestAttemptClockAcrossARedirect(t *testing.T) {
	addr := listenNoAccept(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+addr+"/x", http.StatusFound)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	p := Policy{AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 1}
	start := time.Now()
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/"), Concurrency: 1, Policy: p})[0]
	took := time.Since(start)
	t.Logf("outcome %q attempts %d error %q after %v", it.Outcome, it.Attempts, it.Error, took)
	if it.Outcome != OutcomeTimeout || took > 2*time.Second {
		t.Errorf("got %q in %v", it.Outcome, took)
	}
}

// Headers then a stalled body: attempt 1 times out mid-body, keeps its
// part; attempt 2 asks for the rest.
func TestStallMidBodyResumesOnTheNextAttempt(t *testing.T) {
	body := randomBytes(3, 100000)
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		k := len(ranges)
		mu.Unlock()
		w.Header().Set("ETag", `"v1"`)
		if k == 1 {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body[:40000])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	p := Policy{AttemptTimeout: 400 * time.Millisecond, MaxAttempts: 2, InitialBackoff: 10 * time.Millisecond}
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/"), Concurrency: 1, Policy: p})[0]
	t.Logf("outcome %q attempts %d size %d ranges %q", it.Outcome, it.Attempts, it.Size, ranges)
	if it.Outcome != "" && it.Outcome != OutcomeOK || it.Size != int64(len(body)) || len(ranges) != 2 || ranges[1] != "bytes=40000-" {
		t.Errorf("got %+v ranges %q", it, ranges)
	}
	if r := e.hashOne(t, it); r.Outcome != OutcomeOK {
		t.Errorf("hash: %+v", r)
	}
}

// One-URL activity: attempt timeout mid-body keeps the part (for the next
// Temporal attempt) and reports a retryable Timeout.
func TestFetchURLStallKeepsThePartRead(t *testing.T) {
	body := randomBytes(4, 100000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		_, _ = w.Write(body[:40000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	p := Policy{AttemptTimeout: 400 * time.Millisecond, MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond}
	start := time.Now()
	_, err := e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: srv.URL + "/"}, Policy: p})
	t.Logf("err %v after %v; files %v", err, time.Since(start), e.files(t))
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != TimeoutType || appErr.NonRetryable() {
		t.Errorf("want retryable Timeout, got %v", err)
	}
	if len(e.files(t)) == 0 {
		t.Errorf("kept part dropped")
	}
}

// url_timeout expiring while waiting for the host's only connection, and
// during an attempt: "URL timed out", never "attempt timed out".
func TestURLTimeoutIsNotAnAttemptTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	c, _ := NewHTTPClient(ClientConfig{MaxConnsPerHost: 1, Guard: Guard{Allow: []string{"127.0.0.1"}}})
	t.Cleanup(c.CloseIdleConnections)
	e.f.Client = c
	p := Policy{AttemptTimeout: 2 * time.Second, URLTimeout: 700 * time.Millisecond, MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL+"/a", srv.URL+"/b"), Concurrency: 2, Policy: p})
	for _, it := range items {
		t.Logf("%s: %q %q attempts %d elapsed %d", it.URL, it.Outcome, it.Error, it.Attempts, it.ElapsedMS)
		if it.Outcome != OutcomeTimeout || !strings.HasPrefix(it.Error, "URL timed out") {
			t.Errorf("%s: %q %q", it.URL, it.Outcome, it.Error)
		}
	}
}

func TestAttemptContextRacesItsEnd(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for i := 0; i < 2000; i++ {
		ctx, timedOut, done := attemptContext(context.Background(), time.Duration(i%3)*time.Microsecond)
		tr := httptrace.ContextClientTrace(ctx)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); tr.ConnectStart("tcp", "x") }()
		go func() { defer wg.Done(); tr.GotConn(httptrace.GotConnInfo{}) }()
		if i%2 == 0 {
			done()
			wg.Wait()
		} else {
			wg.Wait()
			done()
		}
		_ = timedOut()
		if ctx.Err() == nil {
			t.Fatal("ctx alive after done")
		}
	}
	// a canceled parent is not an attempt timeout
	parent, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	ctx, timedOut, done := attemptContext(parent, time.Hour)
	httptrace.ContextClientTrace(ctx).ConnectStart("tcp", "x")
	<-ctx.Done()
	if timedOut() {
		t.Error("parent deadline reported as attempt timeout")
	}
	done()
}
