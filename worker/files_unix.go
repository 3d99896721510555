//go:build unix

package main

import "syscall"

// openFilesLimit is the process's limit on open files (0: unknown).
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) != nil {
		return 0
	}
	return uint64(r.Cur)
}
