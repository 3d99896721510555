package blobstore

import (
	"errors"
	"syscall"
)

// Spacer is a store on a disk of known size: the directory store. A fetch
// that finds the disk full waits for room (bodies of hashed chunks are
// removed as batches go), and fails only a body the disk could never hold.
type Spacer interface {
	// Space says how many bytes the store's file system holds in all, and
	// how many an unprivileged writer can still use.
	Space() (total, free int64, err error)
}

// NoSpace tells whether err is a write refused for want of space (ENOSPC,
// or EDQUOT: a quota is a disk that is full for this writer).
func NoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
