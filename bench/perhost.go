package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/politeness"
	"github.com/batchfetch/batchfetch/workflows"
)

// perHost measures the cost of per-host limits, on worker processes of
// their own with their default flags (blobs on disk):
//
//   - many hosts: --perhost-urls pages of --latency over the site's
//     --hosts hosts, max_in_flight 200, without a per_host rule and with
//     one that never binds (max_in_flight and rate above what each host
//     gets); the ratio is with/without.
//   - one host rate-limited: --perhost-drain URLs of one host with
//     per_host rate --perhost-rate, beside as many URLs spread over the
//     other hosts, on one worker and on three sharing the task queue; the
//     ideal is the host's URL count divided by its rate.
func perHost(c *config, st *stack, s *site) error {
	fmt.Printf("\n== perhost: per-host limits over %d hosts (%s ...), pages answering after %v, blobs on disk (%s)\n",
		len(s.hosts), strings.TrimPrefix(s.hosts[0], "http://"), c.latency, filepath.Join(st.dir, "blobs"))
	if err := perHostThroughput(c, st, s); err != nil {
		return err
	}
	for _, workers := range []int{1, 3} {
		if err := perHostDrain(c, st, s, workers); err != nil {
			return err
		}
	}
	return nil
}

// perHostThroughput runs the many-host batch without and with a rule
// that does not bind, on one worker process and on three.
func perHostThroughput(c *config, st *stack, s *site) error {
	for _, n := range []int{1, 3} {
		if err := perHostThroughputOn(c, st, s, n); err != nil {
			return err
		}
	}
	return nil
}

func perHostThroughputOn(c *config, st *stack, s *site, n int) error {
	const inFlight = 200
	w, stop, err := startProcWorkers(c, st, fmt.Sprint("perhost-", n), n)
	if err != nil {
		return err
	}
	defer stop()
	loose := &workflows.PerHost{MaxInFlight: inFlight, Rate: "10000/s"}
	fmt.Printf("many hosts: %d URLs, max_in_flight %d, %d worker process(es)\n", c.perHostURLs, inFlight, n)
	var rates [2]float64
	for i, rule := range []*workflows.PerHost{nil, loose} {
		urls := s.spread(c.perHostURLs, "small", fmt.Sprint("ph", n, "-", i))
		o, err := runInput(st, w.target(), workflows.Input{MaxInFlight: inFlight, PerHost: rule}, urls, c.timeout, false)
		label := "without per_host"
		if rule != nil {
			label = fmt.Sprintf("per_host {max_in_flight: %d, rate: %q}", rule.MaxInFlight, rule.Rate)
		}
		if err != nil {
			fmt.Printf("  %-50s failed: %v\n", label, err)
			return nil
		}
		rates[i] = float64(len(urls)) / o.wall.Seconds()
		fmt.Printf("  %-50s %8.0f URLs/s  (%v, %d ok, %d failed)\n", label, rates[i], o.wall.Round(time.Millisecond), o.ok, o.failed)
	}
	fmt.Printf("  ratio with/without %8.2f\n", rates[1]/rates[0])
	return nil
}

// perHostDrain runs a batch dominated by one rate-limited host on n
// worker processes sharing its task queue.
func perHostDrain(c *config, st *stack, s *site, n int) error {
	w, stop, err := startProcWorkers(c, st, fmt.Sprint("perhost-drain-", n), n)
	if err != nil {
		return err
	}
	defer stop()
	limited := s.hosts[0]
	var urls []string
	for i := range c.perHostDrain {
		urls = append(urls, fmt.Sprintf("%s/small/drain%d/%d", limited, n, i))
		if len(s.hosts) > 1 {
			urls = append(urls, fmt.Sprintf("%s/small/drain%d/o%d", s.hosts[1+i%(len(s.hosts)-1)], n, i))
		}
	}
	rule := &workflows.PerHost{Rate: c.perHostRate}
	o, err := runInput(st, w.target(), workflows.Input{MaxInFlight: 200, PerHost: rule}, urls, c.timeout, false)
	if err != nil {
		fmt.Printf("one host at %s, %d worker(s): failed: %v\n", c.perHostRate, n, err)
		return nil
	}
	r, err := politeness.ParseRate(c.perHostRate)
	if err != nil {
		return fmt.Errorf("--perhost-rate: %w", err)
	}
	ideal := time.Duration(float64(c.perHostDrain) / float64(r) * float64(time.Second))
	fmt.Printf("one host at %s, %d of its URLs and %d of other hosts, %d worker process(es): drained in %v (%d ok, %d failed); ideal %v; ideal/measured %.2f\n",
		c.perHostRate, c.perHostDrain, len(urls)-c.perHostDrain, n, o.wall.Round(time.Millisecond), o.ok, o.failed, ideal, ideal.Seconds()/o.wall.Seconds())
	return nil
}

// startProcWorkers starts n worker processes on the queues of name and
// waits until each counts all of them (they divide per-host rules by
// the fetch workers they count). stop stops them all.
func startProcWorkers(c *config, st *stack, name string, n int) (first *procWorker, stop func(), err error) {
	var procs []*procWorker
	stop = func() {
		for _, p := range procs {
			p.stop()
		}
	}
	for range n {
		w, err := startProcWorker(c, st, name, filepath.Join(st.dir, "blobs"))
		if err != nil {
			stop()
			return nil, nil, err
		}
		procs = append(procs, w)
	}
	if n > 1 {
		if err := waitFetchPollers(st, procs[0].queue, n); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return procs[0], stop, nil
}

// waitFetchPollers waits until n fetch workers poll queue's activities,
// then as long as a worker takes to count them (a few seconds after it
// starts: see internal/workers).
func waitFetchPollers(st *stack, queue string, n int) error {
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := st.client.DescribeTaskQueue(context.Background(), queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err == nil {
			fetch := 0
			for _, p := range d.GetPollers() {
				if _, ok := workers.FetchSlotsOf(p.GetIdentity()); ok {
					fetch++
				}
			}
			if fetch >= n {
				time.Sleep(8 * time.Second) // the workers' counts, at 1, 2 and 4 s after their start
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d fetch workers do not all poll %s after a minute (last error: %v)", n, queue, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's view
	}
}
