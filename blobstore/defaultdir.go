package blobstore

import (
	"os"
	"path/filepath"
)

// DefaultDir is the blob directory every batchfetch command uses unless
// told otherwise (--blob-dir, BATCHFETCH_BLOB_DIR): the user's cache
// directory's batchfetch/blobs (~/.cache/batchfetch/blobs on Linux), or
// $TMPDIR/batchfetch-blobs where there is no cache directory (no $HOME).
// The starter, the worker and the dev stack all default to it, so a
// starter and the workers it talks to share a store without a flag.
func DefaultDir() string {
	return defaultDir(os.UserCacheDir)
}

func defaultDir(cacheDir func() (string, error)) string {
	if dir, err := cacheDir(); err == nil && dir != "" {
		return filepath.Join(dir, "batchfetch", "blobs")
	}
	return filepath.Join(os.TempDir(), "batchfetch-blobs")
}
