// Package demosite is a small local web site whose pages behave like the
// ones a batch meets in the wild: fast, slow, flaky, rate limited, missing,
// and large. `starter --dev` serves it on 127.0.0.1 so the demo needs no
// internet.
package demosite

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LargeSize is the size of /large, in bytes.
const LargeSize = 32 << 20

// Site serves the demo pages. Counters are per path, so each flaky or
// rate-limited URL fails first and then succeeds.
type Site struct {
	mu    sync.Mutex
	calls map[string]int
}

// New returns an empty site.
func New() *Site { return &Site{calls: map[string]int{}} }

func (s *Site) call(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[path]++
	return s.calls[path]
}

// ServeHTTP implements http.Handler.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/fast/"):
		fmt.Fprintf(w, "<html><body><h1>page %s</h1>%s</body></html>\n", strings.TrimPrefix(path, "/fast/"), strings.Repeat("batchfetch ", 200))
	case strings.HasPrefix(path, "/slow/"):
		select {
		case <-time.After(2 * time.Second):
			fmt.Fprintf(w, "slow page %s\n", strings.TrimPrefix(path, "/slow/"))
		case <-r.Context().Done():
		}
	case strings.HasPrefix(path, "/flaky/"):
		if s.call(path) <= 2 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "flaky page %s, third time lucky\n", strings.TrimPrefix(path, "/flaky/"))
	case strings.HasPrefix(path, "/ratelimited/"):
		if s.call(path) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprintf(w, "rate-limited page %s\n", strings.TrimPrefix(path, "/ratelimited/"))
	case path == "/large":
		w.Header().Set("Content-Length", strconv.Itoa(LargeSize))
		_, _ = io.Copy(w, io.LimitReader(Pattern{}, LargeSize))
	default:
		http.NotFound(w, r)
	}
}

// Pattern is an endless, deterministic byte stream (for large bodies).
type Pattern struct{}

// Read fills p with a repeating pattern.
func (Pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return len(p), nil
}

// URLs lists a demo batch against base (such as "http://127.0.0.1:8080").
func URLs(base string) []string {
	var urls []string
	for i := 1; i <= 20; i++ {
		urls = append(urls, fmt.Sprintf("%s/fast/%d", base, i))
	}
	return append(urls,
		base+"/slow/1", base+"/slow/2",
		base+"/flaky/1", base+"/flaky/2",
		base+"/ratelimited/1",
		base+"/missing",
		base+"/large",
	)
}

// FastURLs lists n fast pages of the site at base.
func FastURLs(base string, n int) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/fast/%d", base, i+1)
	}
	return urls
}

// Serve starts the site on addr (such as "127.0.0.1:0") and returns its
// base URL and a function that stops it.
func Serve(addr string) (base string, stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("demo site: %w", err)
	}
	srv := &http.Server{Handler: New(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}
