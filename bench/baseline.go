package main

import (
	"crypto/sha256"
	"io"
	"sync"
	"time"

	"github.com/batchfetch/batchfetch/activities"
)

// baseline fetches and hashes urls with plain Go: a goroutine per URL, a
// semaphore of inFlight, the same pooled client, sha256 streamed.
func baseline(urls []string, inFlight, perHost int) (time.Duration, error) {
	if perHost <= 0 {
		perHost = inFlight
	}
	hc, err := activities.NewHTTPClient(loopback(perHost))
	if err != nil {
		return 0, err
	}
	defer hc.CloseIdleConnections()
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for _, u := range urls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := hc.Get(u)
			if err == nil {
				h := sha256.New()
				_, err = io.Copy(h, resp.Body)
				resp.Body.Close()
				_ = h.Sum(nil)
			}
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}
