package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuClock reads the CPU time (user plus system) of this process and of
// the worker process, if there is one.
type cpuClock struct {
	worker int // pid, 0 for none
}

type cpuReading struct{ self, worker time.Duration }

func (c cpuClock) read() cpuReading {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	r := cpuReading{self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	if c.worker != 0 {
		r.worker = procCPU(c.worker)
	}
	return r
}

// procCPU is a live process's CPU time from /proc/PID/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func (a cpuReading) sub(b cpuReading) cpuReading {
	return cpuReading{self: a.self - b.self, worker: a.worker - b.worker}
}

// perURL formats CPU per URL in microseconds.
func perURL(d time.Duration, n int) string {
	return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n))
}
