package blobstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache) // os.UserCacheDir on Linux
	t.Setenv("HOME", cache)           // and on macOS
	got := DefaultDir()
	if want, err := os.UserCacheDir(); err != nil || got != filepath.Join(want, "batchfetch", "blobs") {
		t.Errorf("DefaultDir() = %q, want %q/batchfetch/blobs (%v)", got, want, err)
	}
	if got := defaultDir(func() (string, error) { return "", errors.New("no $HOME") }); got != filepath.Join(os.TempDir(), "batchfetch-blobs") {
		t.Errorf("without a cache directory: %q, want $TMPDIR/batchfetch-blobs", got)
	}
}
