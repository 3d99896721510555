//go:build unix

package activities

import (
	"context"
	"hash"
	"os"
	"runtime"
	"syscall"
)

// mmapWindow is how much of a blob is mapped at once: enough to amortise
// the mapping, small enough to keep resident memory flat on huge bodies.
const mmapWindow = 64 << 20

// hashMapped hashes a local file from offset by mapping it window by
// window: no copy from the page cache, unlike read. ok is false when the
// reader is not a plain file (the caller reads it instead).
func hashMapped(ctx context.Context, r any, offset int64, sum hash.Hash, progress func(int64)) (size int64, ok bool, err error) {
	f, isFile := r.(*os.File)
	if !isFile || offset%int64(os.Getpagesize()) != 0 {
		return 0, false, nil
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, false, nil
	}
	size = st.Size()
	for off := offset; off < size; {
		n := min(int64(mmapWindow), size-off)
		m, err := syscall.Mmap(int(f.Fd()), off, int(n), syscall.PROT_READ, syscall.MAP_SHARED|mapPopulate)
		if err != nil {
			if off == offset {
				return 0, false, nil // not mappable: read it instead
			}
			return 0, true, err
		}
		_ = syscall.Madvise(m, syscall.MADV_SEQUENTIAL)
		for i := int64(0); i < n; i += hashChunk {
			if err := ctx.Err(); err != nil {
				_ = syscall.Munmap(m)
				return 0, true, err
			}
			sum.Write(m[i:min(i+hashChunk, n)])
			progress(off + min(i+hashChunk, n))
			runtime.Gosched() // let latency-sensitive goroutines in between megabytes
		}
		if err := syscall.Munmap(m); err != nil {
			return 0, true, err
		}
		off += n
	}
	return size, true, nil
}
