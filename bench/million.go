package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batchfetch/batchfetch/workflows"
)

// million runs --million-urls (1,000,000) URLs of the size mix through
// `starter --dev`, built and run as a process of its own (its embedded
// server and workers), the URL list given with --file, the site in the
// bench's process on 127.0.0.1. The dev database is on disk; its blob
// directory (blobs beside --dev-db) is a tmpfs of --million-disk (4 GiB),
// so statfs tells the scratch bytes. Prints the wall time, the starter's
// peak RSS (its rusage at exit) and the peak scratch bytes.
func million(c *config, st *stack, s *site) error {
	bin, err := st.binary("starter")
	if err != nil {
		return err
	}
	dir := filepath.Join(st.dir, "million")
	blobs := filepath.Join(dir, "blobs")
	list, total, large, err := writeMillionList(c, s, filepath.Join(dir, "urls.txt"))
	if err != nil {
		return err
	}
	fmt.Printf("\n== million: %d URLs on %s, %s in all (%d of 5 MiB, the others log-normal around 30 KiB), answering after %v, max_in_flight %d; starter --dev as a process, database on disk, blobs on a tmpfs of %s\n",
		c.millionURLs, strings.TrimPrefix(s.base, "http://"), mib(total), large, c.mixLatency, c.mixInFlight, mib(c.millionDisk))
	unmount, err := mountTmpfs(blobs, c.millionDisk)
	if err != nil {
		return skipped(err)
	}
	defer unmount()
	out := filepath.Join(dir, "results.jsonl")
	r, err := runStarter(c, bin, blobs, "--dev", "--dev-db", filepath.Join(dir, "dev.sqlite"), "--dev-port", "0", "--dev-ui-port", "0",
		"--file", list, "--max-in-flight", strconv.Itoa(c.mixInFlight), "--out", out)
	if err != nil {
		return err
	}
	fmt.Printf("starter %s\n%s", strings.Join(r.cmd.Args[1:], " "), indent(lastProgress(r.stderr.String())))
	if r.timedOut {
		fmt.Printf("stopped (SIGTERM) by the bench after --million-timeout %v: the last progress line above says how far it got\n", c.millionTimeout)
	}
	fmt.Printf("exit status %d after %v wall clock (server start and results included)\n", r.cmd.ProcessState.ExitCode(), r.wall.Round(time.Second))
	if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Printf("peak RSS of the starter process (server, workers, starter): %s\n", mib(ru.Maxrss<<10))
	}
	fmt.Printf("peak scratch %s of the %s tmpfs (%s in use before it started; the URL list, %s, and the results file are on it too)\n",
		mib(r.scratch.peak), mib(c.millionDisk), mib(r.scratch.start), mib(fileSize(list)))
	fmt.Printf("database %s, results file %s\n", mib(fileSize(filepath.Join(dir, "dev.sqlite"))+fileSize(filepath.Join(dir, "dev.sqlite-wal"))), mib(fileSize(out)))
	return millionResults(out)
}

// starterRun is a starter process that ran to its end.
type starterRun struct {
	cmd      *exec.Cmd
	stderr   tail
	wall     time.Duration
	timedOut bool // stopped by the bench at --million-timeout
	scratch  *scratchMeter
}

// runStarter runs the starter with args until it exits (or, after
// --million-timeout, until SIGTERM stops it), metering the scratch bytes
// on blobs. An exit status is no error: the caller reports it.
func runStarter(c *config, bin, blobs string, args ...string) (*starterRun, error) {
	r := &starterRun{cmd: exec.Command(bin, args...)}
	r.cmd.Stderr = &r.stderr
	r.scratch = meterScratch(blobs)
	defer r.scratch.finish()
	start := time.Now()
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	stop := atExit(func() { _ = r.cmd.Process.Kill() })
	defer stop()
	var timedOut atomic.Bool
	timer := time.AfterFunc(c.millionTimeout, func() { timedOut.Store(true); _ = r.cmd.Process.Signal(syscall.SIGTERM) })
	err := r.cmd.Wait()
	timer.Stop()
	r.wall, r.timedOut = time.Since(start), timedOut.Load()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, err
	}
	return r, nil
}

// lastProgress keeps, of the starter's stderr, every line but the
// progress lines ("[###...] done/total ..."), and the last of those.
func lastProgress(s string) string {
	var keep []string
	last := ""
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "[") {
			last = line
			continue
		}
		keep = append(keep, line)
	}
	if last != "" {
		keep = append(keep, "last progress: "+last)
	}
	return strings.Join(keep, "\n")
}

// writeMillionList writes the URL list and sums its bodies.
func writeMillionList(c *config, s *site, path string) (string, int64, int, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", 0, 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", 0, 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	var total int64
	large := 0
	for i := range c.millionURLs {
		p := fmt.Sprintf("/mix/million/%d", i)
		n := mixSize(p)
		total += n
		if n == mixLarge {
			large++
		}
		fmt.Fprintf(w, "%s%s\n", s.base, p)
	}
	if err := w.Flush(); err != nil {
		return "", 0, 0, err
	}
	return path, total, large, f.Close()
}

// millionResults counts and checks the results the starter wrote.
func millionResults(path string) error {
	f, err := os.Open(path)
	if err != nil {
		fmt.Printf("no results file: %v\n", err)
		return nil
	}
	defer f.Close()
	var check mixCheck
	var errs errorCounts
	ok, failed := 0, 0
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	for {
		var r workflows.Result
		if err := dec.Decode(&r); err != nil {
			if !errors.Is(err, io.EOF) {
				fmt.Printf("results file %s: %v\n", path, err)
			}
			break
		}
		if r.Outcome == workflows.OutcomeOK {
			ok++
		} else {
			failed++
			errs.add(r.Outcome + ": " + r.Error)
		}
		check.add(r)
	}
	fmt.Printf("%d ok, %d failed; errors: %v\n", ok, failed, errs)
	return check.report()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
