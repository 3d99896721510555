package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchfetch/batchfetch/internal/demosite"
)

// site serves, on 127.0.0.1 and on the hosts 127.0.1.1, 127.0.1.2, ...
// (each a listener of its own): small pages with a fixed latency (/small/),
// slow pages (/slow/), pages of a given size with the small pages'
// latency (/sized/), bodies of the size mix (/mix/, see sizes.go), large
// pattern bodies (/large/) and flaky pages (/flaky/). It counts the
// requests it is answering at once.
type site struct {
	base  string   // http://127.0.0.1:PORT
	hosts []string // http://127.0.1.N:PORT
	srvs  []*http.Server
	c     *config

	mu    sync.Mutex
	asked map[string][]time.Time // /flaky/ paths: when each was requested

	open, peakOpen atomic.Int64 // requests being answered, and the most at once
}

func startSite(c *config) (*site, error) {
	s := &site{c: c, asked: map[string][]time.Time{}}
	h := s.handler()
	for i := 0; i <= c.hosts; i++ {
		addr := "127.0.0.1:0"
		if i > 0 {
			addr = fmt.Sprintf("127.0.1.%d:0", i)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("site: listening on %s: %w", addr, err)
		}
		srv := &http.Server{Handler: h}
		s.srvs = append(s.srvs, srv)
		go func() { _ = srv.Serve(l) }()
		if i == 0 {
			s.base = "http://" + l.Addr().String()
		} else {
			s.hosts = append(s.hosts, "http://"+l.Addr().String())
		}
	}
	return s, nil
}

func (s *site) handler() http.Handler {
	small := make([]byte, s.c.bodyBytes)
	for i := range small {
		small[i] = byte('a' + i%26)
	}
	page := func(latency time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(latency)
			w.Header().Set("Content-Length", strconv.Itoa(len(small)))
			_, _ = w.Write(small)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/small/", page(s.c.latency))
	mux.HandleFunc("/slow/", page(s.c.slowLatency))
	mux.HandleFunc("/mix/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(s.c.mixLatency)
		n := mixSize(r.URL.Path)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_ = writeMixBody(w, r.URL.Path, n)
	})
	mux.HandleFunc("/large/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, io.LimitReader(demosite.Pattern{}, n))
	})
	// /sized/...?size=N: a page of N bytes, as late as a small page.
	mux.HandleFunc("/sized/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(s.c.latency)
		n, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		_, _ = io.Copy(w, io.LimitReader(demosite.Pattern{}, n))
	})
	// /flaky/...?fail=N answers 503 N times, then 200; it notes when it
	// was asked.
	mux.HandleFunc("/flaky/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked[r.URL.Path] = append(s.asked[r.URL.Path], time.Now())
		n := len(s.asked[r.URL.Path])
		s.mu.Unlock()
		if fail, _ := strconv.Atoi(r.URL.Query().Get("fail")); n <= fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(small)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.open.Add(1)
		defer s.open.Add(-1)
		for {
			p := s.peakOpen.Load()
			if n <= p || s.peakOpen.CompareAndSwap(p, n) {
				break
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// peak returns the most requests answered at once since the last call,
// and starts counting again from those open now.
func (s *site) peak() int64 { return s.peakOpen.Swap(s.open.Load()) }

func (s *site) close() {
	for _, srv := range s.srvs {
		_ = srv.Close()
	}
}

func (s *site) smallURLs(n int, tag string) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/small/%s/%d", s.base, tag, i)
	}
	return urls
}

func (s *site) largeURLs(n int, size int64, tag string) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/large/%s/%d?size=%d", s.base, tag, i, size)
	}
	return urls
}

// spread returns n URLs of the kind (slow, mix) over the site's hosts in
// turn: URL i is on host i mod hosts.
func (s *site) spread(n int, kind, tag string) []string {
	urls := make([]string, n)
	for i := range urls {
		urls[i] = fmt.Sprintf("%s/%s/%s/%d", s.hosts[i%len(s.hosts)], kind, tag, i)
	}
	return urls
}
