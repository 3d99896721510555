package activities

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// writeRobotsRecord puts a hand-written record for origin in the blob
// store at dir, as another worker would have.
func writeRobotsRecord(t *testing.T, dir, origin string, body []byte) {
	t.Helper()
	p := filepath.Join(dir, RobotsKey(origin))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A record under robots/ that claims to hold for a century is believed no
// longer than this worker would trust what it fetched itself: once that
// has passed, robots.txt is asked again. A malformed or huge record is
// not believed at all.
func TestRobotsSharedRecordsAreTrustedNoLongerThanTheTTL(t *testing.T) {
	site := newRobotsSite(t, 1, robotsText("User-agent: *\nDisallow: /private\n"))
	dir := t.TempDir()
	e := newRobotsEnv(t, dir)
	rec, _ := json.Marshal(robotsRecord{Origin: site.URL, Kind: robotsUnreachable, Reason: "HTTP 503", Expires: e.clock.now().AddDate(100, 0, 0), Retry: "1m0s"})
	writeRobotsRecord(t, dir, site.URL, rec)
	items := e.fetch(t, obey, nil, site.URL+"/a")
	if items[0].Outcome == OutcomeRobotsDisallowed {
		e.clock.advance(DefaultRobotsErrorTTL + time.Second)
		items = e.fetch(t, obey, nil, site.URL+"/a")
	}
	wantFetched(t, items[0])
	if n := site.count("/robots.txt"); n != 1 {
		t.Errorf("robots.txt asked %d times, want 1: a record of a hundred years' trust kept it away", n)
	}

	for name, body := range map[string][]byte{
		"malformed": []byte(`{"origin": "` + site.URL + `", "kind": "unreachable", "expires": `),
		"huge":      append([]byte(`{"origin": "`+site.URL+`", "kind": "unreachable", "reason": "`), bytes.Repeat([]byte("x"), 4*MaxRobotsBytes)...),
	} {
		other := newRobotsSite(t, 2, robotsText("User-agent: *\nDisallow: /private\n"))
		dir := t.TempDir()
		e := newRobotsEnv(t, dir)
		writeRobotsRecord(t, dir, other.URL, body)
		items := e.fetch(t, obey, nil, other.URL+"/a", other.URL+"/private")
		wantFetched(t, items[0])
		wantRefused(t, items[1], "disallowed by")
		if n := other.count("/robots.txt"); n != 1 {
			t.Errorf("%s record: robots.txt asked %d times, want 1", name, n)
		}
	}
}

// http://h:80/ and http://h/ are one origin: one robots.txt, whose rules
// hold for both.
func TestRobotsDefaultPortIsOneOrigin(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.1.5:80")
	if err != nil {
		t.Skipf("port 80 on 127.0.1.5: %v", err)
	}
	var asked atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/robots.txt" {
			asked.Add(1)
			_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
			return
		}
		_, _ = io.WriteString(w, "page")
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	e := newRobotsEnv(t, "")
	items := e.fetch(t, obey, nil, "http://127.0.1.5:80/private", "http://127.0.1.5/private", "http://127.0.1.5:/private", "http://127.0.1.5/a")
	for _, it := range items[:3] {
		wantRefused(t, it, "disallowed by http://127.0.1.5/robots.txt")
	}
	wantFetched(t, items[3])
	if n := asked.Load(); n != 1 {
		t.Errorf("robots.txt asked %d times for one origin, want 1", n)
	}
	for _, tc := range []struct{ in, want string }{
		{"https://H.example:443/x", "https://h.example"},
		{"https://h.example:8443/x", "https://h.example:8443"},
		{"http://[::1]:80/x", "http://[::1]"},
		{"http://h.example:443/x", "http://h.example:443"},
	} {
		u, _ := url.Parse(tc.in)
		if got := robotsOrigin(u); got != tc.want {
			t.Errorf("robotsOrigin(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// RFC 9309: paths match case-sensitively, after percent-encoded
// unreserved characters are decoded (in the rules and in the URL); a
// reserved one (%2F) stays as it is, and a rule in UTF-8 matches its
// percent-encoded form.
func TestRobotsPathsMatchAfterPercentDecoding(t *testing.T) {
	site := newRobotsSite(t, 1, robotsText("User-agent: *\nDisallow: /private\nDisallow: /%7Euser\nDisallow: /a/b\nDisallow: /föo\n"))
	e := newRobotsEnv(t, "")
	u := site.URL
	items := e.fetch(t, obey, nil, u+"/%70rivate/x", u+"/%70RIVATE", u+"/Private", u+"/~user/", u+"/%7euser/", u+"/a%2Fb", u+"/f%C3%B6o", u+"/f%c3%b6o/x", u+"/private")
	for _, i := range []int{0, 3, 4, 6, 7, 8} {
		wantRefused(t, items[i], "disallowed by")
	}
	for _, i := range []int{1, 2, 5} {
		wantFetched(t, items[i])
	}
}

// A robots.txt sent gzipped (Content-Encoding: gzip, asked for or not) is
// read unzipped, its first 500 KiB only: a bomb of a gigabyte of zeros
// costs no more.
func TestRobotsGzipped(t *testing.T) {
	gz := func(write func(io.Writer)) []byte {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		write(zw)
		_ = zw.Close()
		return b.Bytes()
	}
	rules := gz(func(w io.Writer) { _, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n") })
	zeros := make([]byte, 1<<20)
	bomb := gz(func(w io.Writer) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
		for range 1 << 10 {
			_, _ = w.Write(zeros) // a gigabyte unzipped
		}
	})
	for name, body := range map[string][]byte{"rules": rules, "bomb": bomb} {
		site := newRobotsSite(t, 1, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(body)
		})
		e := newRobotsEnv(t, "")
		start := time.Now()
		items := e.fetch(t, obey, nil, site.URL+"/private", site.URL+"/a")
		wantRefused(t, items[0], "disallowed by")
		wantFetched(t, items[1])
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: the chunk took %s", name, d)
		}
		site.Close()
	}
}

// A robots.txt that redirects to an address the guard forbids (127.0.0.2
// here) is not followed there: nothing reaches that address.
func TestRobotsRedirectToAForbiddenAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2: %v", err)
	}
	var reached atomic.Int32
	inside := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.WriteString(w, "User-agent: *\nAllow: /\n")
	}))
	inside.Listener.Close()
	inside.Listener = l
	inside.Start()
	defer inside.Close()
	site := newRobotsSite(t, 1, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/robots.txt", http.StatusFound)
	})
	e := newRobotsEnv(t, "")
	items := e.fetch(t, obey, nil, site.URL+"/a")
	if items[0].Outcome != "" && items[0].Outcome != OutcomeRobotsDisallowed {
		t.Errorf("/a: outcome %q: %s", items[0].Outcome, items[0].Error)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the forbidden address was asked %d times", n)
	}
}

// A worker that meets more origins than its cache holds (a batch over a
// million hosts) keeps at most maxRobotsEntries, the ones it met last,
// and making room costs little: not a pass over the whole cache at each
// new origin, under the lock every URL's check takes.
func TestRobotsCacheBoundIsCheap(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	c := &RobotsCache{Now: clock.now}
	const n = 6 * maxRobotsEntries
	start := time.Now()
	for i := range n {
		clock.advance(time.Millisecond) // each origin met after the one before
		c.put(fmt.Sprintf("http://h%d.example", i), &robotsEntry{kind: robotsUnavailable, expires: clock.now().Add(time.Hour)})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d origins took %s to cache", n, d)
	}
	if len(c.entries) > maxRobotsEntries {
		t.Errorf("%d entries, want at most %d", len(c.entries), maxRobotsEntries)
	}
	for _, i := range []int{n - 1, n - maxRobotsEntries/2} {
		if c.cached(fmt.Sprintf("http://h%d.example", i)) == nil {
			t.Errorf("origin %d of %d, met lately, is not cached", i, n)
		}
	}
	if c.cached("http://h0.example") != nil {
		t.Error("the first origin met is still cached")
	}
}

// A robots.txt that never ends is read to its first 500 KiB, its rules
// there applied, and the fetch goes on at once; one that trickles a byte
// at a time is given up at the attempt timeout, and its host disallowed
// for a while.
func TestRobotsThatNeverEnds(t *testing.T) {
	flood := newRobotsSite(t, 1, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "User-agent: *\nDisallow: /private\n")
		line := []byte("# " + string(bytes.Repeat([]byte("x"), 1000)) + "\n")
		for r.Context().Err() == nil {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	})
	trickle := newRobotsSite(t, 2, func(w http.ResponseWriter, r *http.Request) {
		fl := w.(http.Flusher)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := io.WriteString(w, "#"); err != nil {
				return
			}
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	})
	e := newRobotsEnv(t, "")
	p := obey
	p.AttemptTimeout = time.Second
	start := time.Now()
	items := e.fetch(t, p, nil, flood.URL+"/private", flood.URL+"/a", trickle.URL+"/a")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the chunk took %s", d)
	}
	wantRefused(t, items[0], "disallowed by")
	wantFetched(t, items[1])
	wantRefused(t, items[2], "no whole answer within 1s")
	if n := trickle.count("/a"); n != 0 {
		t.Errorf("the trickling host's page was requested %d times", n)
	}
}
