//go:build linux || darwin || freebsd

package blobstore

import (
	"fmt"
	"syscall"
)

// Space says how large the directory's file system is, and how much of it
// is free (for a writer without root's reserve).
func (d *Dir) Space() (total, free int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.Root, &st); err != nil {
		return 0, 0, fmt.Errorf("blobstore: %w", err)
	}
	bs := int64(st.Bsize)
	return int64(st.Blocks) * bs, int64(st.Bavail) * bs, nil
}
