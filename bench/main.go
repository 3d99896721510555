// Command bench measures batchfetch against a plain-Go baseline, in one
// process and one run, on a local web server:
//
//	go run ./bench                          # the default set of scenarios
//	go run ./bench --urls 10000 --scenarios throughput
//	go run ./bench --scenarios latency,sizemix,smalldisk
//	go run ./bench --scenarios million      # minutes
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
//	latency     URLs/s of pages answering after 250 ms, spread over the
//	            hosts 127.0.1.1 to 127.0.1.8, at max_in_flight 500 and 5,000:
//	            plain Go, then a worker process of its own with its default
//	            flags; the ratio, the requests the site saw at once, the
//	            worker's peak RSS and RSS per request in flight
//	sizemix     100,000 bodies log-normal around 30 KiB and 1% of 5 MiB on
//	            a worker whose blobs are on a 256 MiB tmpfs: ok and failed,
//	            wall time against plain Go, peak scratch bytes, peak RSS
//	smalldisk   40 bodies of 4 MiB, 4 in flight, blobs on a 64 MiB tmpfs:
//	            how many fit, and the peak scratch bytes
//	perhost     per-host limits on worker processes of their own: a
//	            many-host batch without a per_host rule and with one that
//	            does not bind (the ratio), and a batch dominated by one
//	            host at rate 20/s on 1 and 3 workers against the ideal
//	            (its URLs / its rate); not in the default set (use
//	            --hosts 32 or more for many hosts)
//	s3          worker processes of their own with their default flags, one
//	            with its blobs on disk, one on a real S3 server (SeaweedFS
//	            weed mini on loopback): URLs/s of small pages of 2-8 KiB and
//	            MB/s of large bodies on each, the ratios S3/dir, and the S3
//	            objects written and requests per URL, counted by a proxy in
//	            front of the server (not in the default set; the first run
//	            builds weed, minutes)
//	million     1,000,000 URLs of the size mix through starter --dev as a
//	            process, blobs on a 4 GiB tmpfs: wall time, peak RSS, peak
//	            scratch bytes (minutes; not in the default set)
//
// The tmpfs mounts need root (or CAP_SYS_ADMIN); the bench unmounts them
// when done, also when interrupted.
//
// It also prints the history length of the largest run it started.
//
// Each scenario has its own file and an entry in scenarios; harness.go holds
// the stack they share, site.go the site, baseline.go the plain-Go
// baseline, durable.go and batch.go the durable runs, procworker.go the
// worker processes of their own, scratch.go the tmpfs and its meter.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
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

	hosts           int
	perHostURLs     int
	perHostDrain    int
	perHostRate     string
	slowLatency     time.Duration
	latencyURLs     int
	latencyInFlight []int
	mixURLs         int
	mixInFlight     int
	mixLatency      time.Duration
	mixDisk         int64
	s3URLs          int
	s3Large         int
	s3LargeSize     int64
	millionURLs     int
	millionDisk     int64
	millionTimeout  time.Duration
	timeout         time.Duration
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
	"latency":    latency,
	"sizemix":    sizemix,
	"smalldisk":  smalldisk,
	"million":    million,
	"perhost":    perHost,
	"s3":         s3Compare,
}

func main() {
	var c config
	flag.StringVar(&c.scenarios, "scenarios", "throughput,isolation,hash,rss,latency,sizemix,smalldisk", "comma-separated scenarios to run")
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
	flag.IntVar(&c.hosts, "hosts", 8, "hosts of the site for latency and sizemix: 127.0.1.1 to 127.0.1.N, a listener each")
	flag.DurationVar(&c.slowLatency, "slow-latency", 250*time.Millisecond, "server latency of a page in the latency scenario")
	flag.IntVar(&c.latencyURLs, "latency-urls", 20000, "URLs in the latency scenario, at each max_in_flight")
	inFlights := flag.String("latency-in-flight", "500,5000", "comma-separated max_in_flight values of the latency scenario")
	flag.IntVar(&c.mixURLs, "mix-urls", 100000, "URLs in the sizemix scenario")
	flag.IntVar(&c.mixInFlight, "mix-in-flight", 500, "max_in_flight (and the baseline's limit) in the sizemix and million scenarios")
	flag.DurationVar(&c.mixLatency, "mix-latency", 20*time.Millisecond, "server latency of a page in the sizemix and million scenarios")
	mixDisk := flag.Int64("mix-disk", 256, "MiB of the tmpfs holding the blobs in the sizemix scenario")
	flag.IntVar(&c.perHostURLs, "perhost-urls", 20000, "URLs over the site's hosts in the perhost scenario's many-host batches")
	flag.IntVar(&c.perHostDrain, "perhost-drain", 200, "URLs of the one rate-limited host in the perhost scenario")
	flag.StringVar(&c.perHostRate, "perhost-rate", "20/s", "per_host rate of the perhost scenario's limited host")
	flag.IntVar(&c.s3URLs, "s3-urls", 5000, "small pages (2-8 KiB) in the s3 scenario, on each store")
	flag.IntVar(&c.s3Large, "s3-large", 20, "large bodies in the s3 scenario, on each store (0: none)")
	flag.Int64Var(&c.s3LargeSize, "s3-large-size", 20<<20, "bytes of each large body in the s3 scenario")
	flag.IntVar(&c.millionURLs, "million-urls", 1000000, "URLs in the million scenario")
	millionDisk := flag.Int64("million-disk", 4096, "MiB of the tmpfs holding the blobs in the million scenario")
	flag.DurationVar(&c.millionTimeout, "million-timeout", 2*time.Hour, "the million scenario's starter is stopped (SIGTERM) after this long")
	flag.DurationVar(&c.timeout, "batch-timeout", 30*time.Minute, "a batch of the latency, sizemix or smalldisk scenario still running after this long is terminated and reported")
	flag.Parse()
	for _, name := range strings.Split(c.scenarios, ",") {
		if name = strings.TrimSpace(name); name != "" && scenarios[name] == nil {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q (known: %s)\n", name, strings.Join(slices.Sorted(maps.Keys(scenarios)), ", "))
			os.Exit(2)
		}
	}
	c.mixDisk, c.millionDisk = *mixDisk<<20, *millionDisk<<20
	for _, f := range strings.Split(*inFlights, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: --latency-in-flight: %q is not a positive number\n", f)
			os.Exit(2)
		}
		c.latencyInFlight = append(c.latencyInFlight, n)
	}
	if c.hosts < 1 || c.hosts > 254 {
		fmt.Fprintf(os.Stderr, "bench: --hosts must be between 1 and 254, not %d\n", c.hosts)
		os.Exit(2)
	}
	tearDownOnSignal()
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
	defer atExit(st.stop)()
	workersAre := "pools in the bench's process"
	if c.workerProc {
		workersAre = "the worker binary as its own process (" + strings.Join(st.workerArgs, " ") + ")"
	}
	fetchSlots := "the worker's default"
	if c.fetchSlots > 0 {
		fetchSlots = strconv.Itoa(c.fetchSlots)
	}
	fmt.Printf("machine: %s/%s, %d CPUs, %s; server: in-process dev server (%s); blobs and database in %s; workers: %s; fetch slots %s, CPU slots %d\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel(), map[bool]string{true: "SQLite in memory", false: "SQLite file"}[c.memoryDB], st.dir, workersAre, fetchSlots, slotsOf(st.cfg))
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
