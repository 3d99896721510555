package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// mountTmpfs mounts a tmpfs of size bytes on dir (created if missing) and
// returns what unmounts it, once; the unmount also runs if the bench is
// interrupted.
func mountTmpfs(dir string, size int64) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		return nil, mountError{fmt.Errorf("mounting a tmpfs of %d MiB on %s (needs root, or CAP_SYS_ADMIN): %w", size>>20, dir, err)}
	}
	var once sync.Once
	unmount := func() {
		once.Do(func() {
			for range 50 {
				err := syscall.Unmount(dir, 0)
				if err == nil || errors.Is(err, syscall.EINVAL) {
					return
				}
				if !errors.Is(err, syscall.EBUSY) {
					break
				}
				time.Sleep(100 * time.Millisecond) // a process it started is still closing its files
			}
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				fmt.Fprintf(os.Stderr, "bench: unmounting the tmpfs on %s: %v (umount -l %s)\n", dir, err, dir)
			}
		})
	}
	return atExit(unmount), nil
}

// mountError is a tmpfs that could not be mounted: the scenario says so
// and is skipped.
type mountError struct{ error }

// skipped says, for a scenario that could not mount its tmpfs, that it
// was skipped and why (and returns nil); any other error is returned.
func skipped(err error) error {
	var me mountError
	if errors.As(err, &me) {
		fmt.Printf("skipped: %v\n", me.error)
		return nil
	}
	return err
}

// usedBytes is what the file system holding dir has in use.
func usedBytes(dir string) (int64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, err
	}
	return int64(fs.Blocks-fs.Bfree) * fs.Bsize, nil
}

// scratchMeter samples the bytes in use on dir's file system every 50 ms
// (statfs is cheap) until stopped, and keeps the highest.
type scratchMeter struct {
	dir         string
	start, peak int64
	stop, done  chan struct{}
}

func meterScratch(dir string) *scratchMeter {
	m := &scratchMeter{dir: dir, stop: make(chan struct{}), done: make(chan struct{})}
	m.start, _ = usedBytes(dir)
	m.peak = m.start
	go func() {
		defer close(m.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				if n, err := usedBytes(dir); err == nil && n > m.peak {
					m.peak = n
				}
			}
		}
	}()
	return m
}

// finish stops sampling (after one last sample) and returns the peak.
func (m *scratchMeter) finish() int64 {
	close(m.stop)
	<-m.done
	if n, err := usedBytes(m.dir); err == nil && n > m.peak {
		m.peak = n
	}
	return m.peak
}

// mib formats bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
