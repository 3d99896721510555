package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// latency fetches pages that answer after --slow-latency (250 ms) from the
// site's hosts (127.0.1.1, 127.0.1.2, ...), at each max_in_flight of
// --latency-in-flight: with plain Go, then as one batch on a worker
// process of its own with its default flags (blobs on disk), and compares.
func latency(c *config, st *stack, s *site) error {
	fmt.Printf("\n== latency: %d URLs over %d hosts (%s ...), %d-byte pages answering after %v, blobs on disk (%s)\n",
		c.latencyURLs, len(s.hosts), strings.TrimPrefix(s.hosts[0], "http://"), c.bodyBytes, c.slowLatency, filepath.Join(st.dir, "blobs"))
	for _, n := range c.latencyInFlight {
		if err := latencyAt(c, st, s, n); err != nil {
			return fmt.Errorf("max_in_flight %d: %w", n, err)
		}
	}
	return nil
}

func latencyAt(c *config, st *stack, s *site, inFlight int) error {
	urls := s.spread(c.latencyURLs, "slow", fmt.Sprint("lat", inFlight))
	fmt.Printf("max_in_flight %d\n", inFlight)
	s.peak()
	bd, berr := baseline(urls, inFlight, c.perHost)
	bpeak := s.peak()
	b := float64(len(urls)) / bd.Seconds()
	if berr != nil {
		fmt.Printf("  baseline (plain Go)      failed: %v\n", berr)
		b = 0
	} else {
		fmt.Printf("  baseline (plain Go)    %8.0f URLs/s  (%v); the site saw at most %d requests at once\n", b, bd.Round(time.Millisecond), bpeak)
	}

	w, err := startProcWorker(c, st, fmt.Sprint("latency-", inFlight), filepath.Join(st.dir, "blobs"))
	if err != nil {
		return err
	}
	defer w.stop()
	idle, _, err := memory(w.pid())
	if err != nil {
		return err
	}
	s.peak()
	o, err := runBatch(st, w.target(), urls, inFlight, c.timeout, false)
	dpeak := s.peak()
	_, hwm, merr := memory(w.pid())
	if err != nil {
		fmt.Printf("  batchfetch (durable)     failed: %v\n", err)
		if log := w.lastLog(3); log != "" {
			fmt.Printf("  the worker's last words:\n%s", log)
		}
	} else {
		d := float64(len(urls)) / o.wall.Seconds()
		fmt.Printf("  batchfetch (durable)   %8.0f URLs/s  (%v, %d ok, %d failed); the site saw at most %d requests at once\n", d, o.wall.Round(time.Millisecond), o.ok, o.failed, dpeak)
		if o.failed > 0 {
			fmt.Printf("  errors: %v\n", o.errs)
		}
		if b > 0 {
			fmt.Printf("  ratio durable/baseline %8.2f\n", d/b)
		}
	}
	if merr != nil {
		return merr
	}
	perRequest := "no request was in flight"
	if dpeak > 0 {
		perRequest = fmt.Sprintf("%.0f KiB per request in flight ((peak - idle) / %d)", float64(hwm-idle)/float64(dpeak)/1024, dpeak)
	}
	fmt.Printf("  worker process: peak RSS (VmHWM) %s, %s idle before the batch: %s\n", mib(hwm), mib(idle), perRequest)
	fmt.Printf("  (%s)\n", w.describe())
	return nil
}
