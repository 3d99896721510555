package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/batchfetch/batchfetch/blobstore"
)

// staleBatches is the pass of `starter gc` over a blob directory's
// batches/: the scratch of a batch (bodies between fetch and hash, kept
// parts of bodies, chunk files) that nothing wrote to for longer than the
// cutoff. A batch removes its own when it ends; one that ended without
// (terminated, or its history deleted) leaves it, and so does a worker
// cut off from the server that wrote on past its batch's end.
type staleBatches struct {
	root   string // the blob directory's batches/
	cutoff time.Time
	dry    bool
	list   io.Writer // --dry-run lists here
	n      int
	size   int64
}

// sweep removes (or, dry, lists) each batch directory whose newest file
// is older than the cutoff.
func (s *staleBatches) sweep() error {
	runs, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, run := range runs {
		if !run.IsDir() {
			continue
		}
		dir := filepath.Join(s.root, run.Name())
		newest, size, err := lastWrite(dir)
		if err != nil {
			return err
		}
		if !newest.Before(s.cutoff) {
			continue
		}
		if s.dry {
			fmt.Fprintln(s.list, dir)
		} else if err := os.RemoveAll(dir); err != nil {
			return err
		}
		s.n++
		s.size += size
	}
	return nil
}

// lastWrite is when anything under dir (a file, or a directory made) was
// last written, and the bytes its files hold.
func lastWrite(dir string) (newest time.Time, size int64, err error) {
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
		if !e.IsDir() {
			size += info.Size()
		}
		return nil
	})
	return newest, size, err
}

// scratchMinAge is the least time a batch's scratch is left unwritten
// before gc removes it, whatever --older-than says: a batch that waits
// (for workers, for a host's Retry-After) writes nothing meanwhile, and
// its URL lists are in its scratch.
const scratchMinAge = 7 * 24 * time.Hour

// sweepBatches runs the batches/ pass of gc over dir and says what it did.
func sweepBatches(dir string, cutoff time.Time, dry bool, stdout, stderr io.Writer) error {
	if least := time.Now().Add(-scratchMinAge); cutoff.After(least) {
		cutoff = least
	}
	s := &staleBatches{root: filepath.Join(dir, filepath.FromSlash(blobstore.ScratchPrefix)), cutoff: cutoff, dry: dry, list: stdout}
	if err := s.sweep(); err != nil {
		return err
	}
	verb := "removed"
	if dry {
		verb = "would remove"
	}
	fmt.Fprintf(stderr, "%s the scratch of %d batches (%d bytes) not written since %s from %s\n", verb, s.n, s.size, cutoff.UTC().Format(time.RFC3339), s.root)
	return nil
}
