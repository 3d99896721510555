// Command bench measures batchfetch against a plain-Go baseline, in one
// process and one run, on a local web server:
//
//	go run ./bench                          # quick: every scenario, small sizes
//	go run ./bench --urls 10000 --scenarios throughput
//
// Scenarios:
//
//	throughput  URLs/s of the durable pipeline and of a plain-Go errgroup
//	            (same HTTP client, same sha256, no Temporal), and their ratio
//	isolation   fetch latency p50/p99 of small pages, alone and while the
//	            CPU worker is saturated hashing large bodies
//	hash        hash MB/s of the pipeline against raw crypto/sha256 x slots
//	rss         peak resident memory (VmHWM) of a worker process that
//	            fetches and hashes one large body
//	retries     the waits between a URL's attempts at the server, with
//	            Temporal's retry timers (one URL per activity) and with the
//	            chunk activity's own (not in the default set)
//
// It also prints the history length of the largest run it started.
//
// Each scenario has its own file and an entry in scenarios; harness.go holds
// what they share (the stack, the site, the baseline, the durable run).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
)

type config struct {
	scenarios   string
	urls        int
	latency     time.Duration
	inFlight    int
	bodyBytes   int
	loadBodies  int
	loadSize    int64
	rssSize     int64
	memoryDB    bool
	cpuSlots    int
	fetchSlots  int
	perHost     int
	workerProc  bool
	cpuProfile  string
	dir         string
	historyRuns []client.WorkflowRun
}

// A scenario measures one thing on the shared stack and site and prints
// its figures.
type scenario func(c *config, st *stack, s *site) error

// scenarios are the scenarios --scenarios can name, each in its own file.
var scenarios = map[string]scenario{
	"throughput": throughput,
	"isolation":  isolation,
	"hash":       hashRate,
	"rss":        rss,
	"retries":    retries,
}

func main() {
	var c config
	flag.StringVar(&c.scenarios, "scenarios", "throughput,isolation,hash,rss", "comma-separated scenarios to run")
	flag.IntVar(&c.urls, "urls", 10000, "small URLs in the throughput scenario")
	flag.DurationVar(&c.latency, "latency", 20*time.Millisecond, "server latency of a small page")
	flag.IntVar(&c.inFlight, "in-flight", 100, "fetches at once (max_in_flight, and the baseline's limit)")
	flag.IntVar(&c.bodyBytes, "body", 1024, "bytes of a small page")
	flag.IntVar(&c.loadBodies, "load-bodies", 8, "large bodies hashed as CPU load (isolation) and for hash MB/s")
	flag.Int64Var(&c.loadSize, "load-size", 256<<20, "bytes of each large body")
	flag.Int64Var(&c.rssSize, "rss-size", 1<<30, "bytes of the body in the rss scenario")
	flag.IntVar(&c.perHost, "max-conns-per-host", 0, "HTTP connections per host, for both the baseline and the workers (all URLs share one host here); 0: the worker's default (its fetch slots), and max_in_flight for the baseline")
	flag.BoolVar(&c.workerProc, "worker-process", true, "run the fetch and CPU workers as the worker binary, a process of its own with its default flags, as users run it (false: pools in the bench's own process)")
	flag.StringVar(&c.dir, "dir", os.TempDir(), "where the server's database and the blobs go while the bench runs (removed at the end): the disk directory a worker's default --blob-dir is in; /dev/shm for tmpfs")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the durable throughput run to this file")
	flag.BoolVar(&c.memoryDB, "memory-db", false, "keep the server's database in memory instead of a SQLite file")
	flag.IntVar(&c.cpuSlots, "cpu-slots", 0, "CPU worker slots (0: the worker's default)")
	flag.IntVar(&c.fetchSlots, "fetch-slots", 0, "fetch worker slots (0: the worker's default)")
	flag.Parse()
	for _, name := range strings.Split(c.scenarios, ",") {
		if name = strings.TrimSpace(name); name != "" && scenarios[name] == nil {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (known: throughput, isolation, hash, rss, retries)\n", name)
			os.Exit(2)
		}
	}
	if err := run(&c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c *config) error {
	site, err := startSite(c)
	if err != nil {
		return err
	}
	defer site.close()
	st, err := startStack(c)
	if err != nil {
		return err
	}
	defer st.stop()
	workersAre := "pools in the bench's process"
	if c.workerProc {
		workersAre = "the worker binary as its own process (" + strings.Join(st.workerArgs, " ") + ")"
	}
	fmt.Printf("machine: %s/%s, %d CPUs, %s; server: in-process dev server (%s); blobs and database in %s; workers: %s; fetch slots %d, CPU slots %d\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), map[bool]string{true: "SQLite in memory", false: "SQLite file"}[c.memoryDB], st.dir, workersAre, max(c.fetchSlots, 100), slotsOf(st.cfg))
	// Warm up connections, caches and task queues.
	if _, _, err := durable(st, site.smallURLs(200, "warm"), c.inFlight); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	for _, name := range strings.Split(c.scenarios, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if err := scenarios[name](c, st, site); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return historyReport(c, st)
}
