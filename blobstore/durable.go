package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// fsync is the file system's sync of a file or a directory; a test
// replaces it to see what is synced, and when.
var fsync = func(f *os.File) error { return f.Sync() }

// betweenMkdirAndUse, when set (tests), runs after create or a rename
// into place has made the directory dir and before the file is made in
// it: where another writer's DeletePrefix can remove dir again.
var betweenMkdirAndUse func(dir string)

// remakes bounds how often create (and a rename into place) makes a
// directory again that vanished under it.
const remakes = 8

// create creates the file name exclusively, with its parent directories.
// DeletePrefix removes the parents it leaves empty (batches/ once the last
// batch's cleanup runs, inputs/ once the last list is removed), and may do
// so between the two steps, for a batch or a starter writing beside it:
// then the directories are made again.
func create(name string) (*os.File, error) {
	dir := filepath.Dir(name)
	for i := 0; ; i++ {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
		if betweenMkdirAndUse != nil {
			betweenMkdirAndUse(dir)
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || i == remakes {
			return nil, fmt.Errorf("blobstore: %w", err)
		}
	}
}

// CommitFile puts f, a complete file written beside final, in place:
// its bytes are synced, it is closed and renamed to final, and final's
// directory is synced. After a host crash final holds all of f or what
// it held before, never part of f, and a commit that returned is not
// undone. f is removed when CommitFile fails before the rename.
func CommitFile(f *os.File, final string) error {
	return commitFile(f, final, false, true)
}

// commitFile is CommitFile; with remake, final's directory is made again
// if a DeletePrefix removed it (f is elsewhere: an unnamed blob); without
// durable, nothing is synced (scratch blobs).
func commitFile(f *os.File, final string, remake, durable bool) error {
	if durable {
		if err := fsync(f); err != nil {
			f.Close()
			_ = os.Remove(f.Name())
			return fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	for i := 0; ; i++ {
		err := os.Rename(f.Name(), final)
		if err == nil {
			break
		}
		if !remake || !errors.Is(err, fs.ErrNotExist) || i == remakes {
			_ = os.Remove(f.Name())
			return err
		}
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			_ = os.Remove(f.Name())
			return err
		}
		if betweenMkdirAndUse != nil {
			betweenMkdirAndUse(filepath.Dir(final))
		}
	}
	if !durable {
		return nil
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("%s is in place but its directory could not be synced: %w", final, err)
	}
	return nil
}

// syncDir makes the entries of dir (a file renamed or created in it)
// durable. A file system that cannot sync a directory (EINVAL; Windows)
// has no stronger promise to give, and is not an error.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}

// ErrNotOneBlob: Remove was given a key that names a directory.
var ErrNotOneBlob = errors.New("not one blob (a directory?): not removed")

// Remove deletes the one blob under key, never a directory or a prefix
// (an input file named by a batch). A blob that is not there is no error.
func (d *Dir) Remove(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	info, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("blobstore: %s: %w", key, ErrNotOneBlob)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}
