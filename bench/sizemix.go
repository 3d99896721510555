package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/batchfetch/batchfetch/workflows"
)

// sizemix fetches --mix-urls (100,000) bodies of the size mix (sizes.go)
// from the site's hosts, each answering after --mix-latency, at
// --mix-in-flight: with plain Go, then as one batch on a worker process
// of its own (default flags) whose blob directory is a tmpfs of
// --mix-disk (256 MiB). It prints the outcome, the wall times and their
// ratio, the peak scratch bytes and the worker's peak RSS.
func sizemix(c *config, st *stack, s *site) error {
	urls := s.spread(c.mixURLs, "mix", "mix")
	total, large, list := mixBytes(urls)
	fmt.Printf("\n== sizemix: %d URLs over %d hosts, %s in all (%d of 5 MiB, the others log-normal around 30 KiB), answering after %v, %d in flight; blobs on a tmpfs of %s\n",
		len(urls), len(s.hosts), mib(total), large, c.mixLatency, c.mixInFlight, mib(c.mixDisk))
	s.peak()
	bd, berr := baseline(urls, c.mixInFlight, c.perHost)
	bpeak := s.peak()
	if berr != nil {
		fmt.Printf("baseline (plain Go)      failed: %v\n", berr)
	} else {
		fmt.Printf("baseline (plain Go)    %8v  (%.0f URLs/s, %.0f MB/s); the site saw at most %d requests at once\n",
			bd.Round(time.Millisecond), float64(len(urls))/bd.Seconds(), float64(total)/1e6/bd.Seconds(), bpeak)
	}

	o, scratch, err := onSmallDisk(c, st, s, "sizemix", c.mixDisk, urls, c.mixInFlight, true)
	if err != nil {
		return skipped(err)
	}
	if o.err != nil {
		fmt.Printf("batchfetch (durable)     failed: %v\n  the worker's last words:\n%s", o.err, o.log)
	} else {
		fmt.Printf("batchfetch (durable)   %8v  (%.0f URLs/s): %d ok, %d failed; the site saw at most %d requests at once\n",
			o.wall.Round(time.Millisecond), float64(len(urls))/o.wall.Seconds(), o.ok, o.failed, o.sitePeak)
		if o.failed > 0 {
			fmt.Printf("errors: %v\n", o.errs)
		}
		if berr == nil {
			fmt.Printf("ratio durable/baseline  %8.2f  (URLs/s, or baseline wall time over durable)\n", bd.Seconds()/o.wall.Seconds())
		}
	}
	fmt.Printf("peak scratch %s of %s (%s in use before the batch; the URL list, %s, and the results file are on it too)\n",
		mib(scratch.peak), mib(c.mixDisk), mib(scratch.start), mib(list))
	fmt.Printf("worker process: peak RSS (VmHWM) %s  (%s)\n", mib(o.hwm), o.worker)
	var check mixCheck
	for _, r := range o.results {
		check.add(r)
	}
	return check.report()
}

// smallDiskRun is a batch on a worker whose blobs are on a small tmpfs.
type smallDiskRun struct {
	outcome
	err      error  // the batch did not end with results
	sitePeak int64  // requests the site answered at once
	hwm      int64  // the worker's peak RSS
	worker   string // its command line
	log      string // the end of its log, if the batch failed
}

// onSmallDisk mounts a tmpfs of size bytes, starts a worker process with
// its blobs there, runs urls on it and reads the peak bytes in use on the
// tmpfs. It unmounts the tmpfs before returning; a tmpfs it cannot mount
// is an error that says so.
func onSmallDisk(c *config, st *stack, s *site, name string, size int64, urls []string, inFlight int, keep bool) (smallDiskRun, *scratchMeter, error) {
	dir := filepath.Join(st.dir, name+"-blobs")
	unmount, err := mountTmpfs(dir, size)
	if err != nil {
		return smallDiskRun{}, nil, err
	}
	defer unmount()
	w, err := startProcWorker(c, st, name, dir)
	if err != nil {
		return smallDiskRun{}, nil, err
	}
	defer w.stop()
	m := meterScratch(dir)
	s.peak()
	r := smallDiskRun{worker: w.describe()}
	r.outcome, r.err = runBatch(st, w.target(), urls, inFlight, c.timeout, keep)
	r.sitePeak = s.peak()
	m.finish()
	if r.err != nil {
		r.log = w.lastLog(3)
	}
	if _, r.hwm, err = memory(w.pid()); err != nil {
		return r, m, err
	}
	return r, m, nil
}

// mixBytes sums the bodies of urls, counts the large ones, and sizes the
// URL list.
func mixBytes(urls []string) (total int64, large int, list int64) {
	for _, u := range urls {
		p, _ := url.Parse(u)
		n := mixSize(p.Path)
		total += n
		if n == mixLarge {
			large++
		}
		list += int64(len(u) + 1)
	}
	return total, large, list
}

// mixCheck checks every ok result's size, and one sha256 in 10, against
// the body the site sent.
type mixCheck struct{ n, sizes, sums, bad int }

func (m *mixCheck) add(r workflows.Result) {
	m.n++
	if r.Outcome != workflows.OutcomeOK {
		return
	}
	p, err := url.Parse(r.URL)
	if err != nil {
		m.bad++
		fmt.Printf("MISMATCH %s: not a URL of the site: %v\n", r.URL, err)
		return
	}
	m.sizes++
	if want := mixSize(p.Path); r.Size != want {
		m.bad++
		fmt.Printf("MISMATCH %s: size %d, the site sent %d\n", r.URL, r.Size, want)
		return
	}
	if m.n%10 == 0 {
		m.sums++
		if want := mixSHA256(p.Path); r.SHA256 != want {
			m.bad++
			fmt.Printf("MISMATCH %s: sha256 %s, the site sent %s\n", r.URL, r.SHA256, want)
		}
	}
}

func (m *mixCheck) report() error {
	fmt.Printf("checked against the site's bodies: %d sizes, %d sha256: %d mismatches\n", m.sizes, m.sums, m.bad)
	if m.bad > 0 {
		return fmt.Errorf("%d ok results do not match the bodies the site sent", m.bad)
	}
	return nil
}
