package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"gocloud.dev/gcerrors"
)

// Toucher is a Store that can mark a blob as used, so that what expires
// blobs (starter gc, an object store's lifecycle rule) goes by their last
// use, not by their writing: a kept body that a not_modified result
// carries forward is used again, though nothing writes it.
type Toucher interface {
	// Touch marks the blob under key as used now. It returns ErrNotFound
	// when there is none (also while a gc holds it hidden, deciding).
	Touch(ctx context.Context, key string) error
}

// Touch marks the blob under key in s as used (Toucher), or, for a store
// that cannot, checks that it is there. It returns ErrNotFound when
// there is no blob under key.
func Touch(ctx context.Context, s Store, key string) error {
	if t, ok := s.(Toucher); ok {
		return t.Touch(ctx, key)
	}
	r, err := s.Open(ctx, key)
	if err != nil {
		return err
	}
	return r.Close()
}

// Touch implements Toucher: the file's modification time becomes now.
func (d *Dir) Touch(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	now := time.Now()
	err = os.Chtimes(p, now, now)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("blobstore: marking %s used: %w", key, err)
	}
	return nil
}

// BucketTouchEvery is how often Bucket.Touch renews an object: a use
// within a day of the object's last renewal (or writing) changes nothing.
const BucketTouchEvery = 24 * time.Hour

// Touch implements Toucher. An object's time cannot be set: an object
// last written more than BucketTouchEvery ago is rewritten in place, by
// two server-side copies (to a hidden key beside it, and back), which
// restarts its lifecycle rule's count. Nothing is downloaded.
func (b *Bucket) Touch(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	notFound := func(err error) error {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("blobstore: marking %s used: %w", key, err)
	}
	attrs, err := b.B.Attributes(ctx, key)
	if err != nil {
		return notFound(err)
	}
	if time.Since(attrs.ModTime) < BucketTouchEvery {
		return nil
	}
	// A copy onto the same key is refused by S3; through a hidden key,
	// which a lifecycle rule on the prefix also expires if this stops
	// half-way.
	tmp := path.Join(path.Dir(key), unnamedName())
	if err := b.B.Copy(ctx, tmp, key, nil); err != nil {
		return notFound(err)
	}
	defer func() { _ = b.B.Delete(context.WithoutCancel(ctx), tmp) }()
	if err := b.B.Copy(ctx, key, tmp, nil); err != nil {
		return notFound(err)
	}
	return nil
}

// HiddenPrefix starts the base name a blob has while RemoveUnused
// decides on it.
const HiddenPrefix = ".gc-"

// beforeHide and betweenHideAndCheck, when set (tests), run in
// RemoveUnused after it has found a blob old enough, before it hides it,
// and after it has hidden it, before it reads its time again.
var beforeHide, betweenHideAndCheck func(key string)

// RemoveUnused removes the blob under key if it was last used (written,
// or marked by Touch) before cutoff, and says whether it did and its
// size. A Commit or Touch of key racing with it is never undone: the blob
// is first renamed to a hidden name beside it (HiddenPrefix), so that a
// Commit of key meanwhile makes a new file and a Touch finds none
// (ErrNotFound: its caller does without it); its time is read again
// there, and it is put back if a Commit or Touch reached it before it
// was hidden.
func (d *Dir) RemoveUnused(key string, cutoff time.Time) (removed bool, size int64, err error) {
	p, err := d.path(key)
	if err != nil {
		return false, 0, err
	}
	if info, err := os.Lstat(p); err != nil || !info.ModTime().Before(cutoff) {
		return false, 0, nil // used since, or removed meanwhile
	}
	if beforeHide != nil {
		beforeHide(key)
	}
	hidden := filepath.Join(filepath.Dir(p), HiddenPrefix+filepath.Base(p)+"."+newID())
	if err := os.Rename(p, hidden); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, 0, nil // removed meanwhile
		}
		return false, 0, fmt.Errorf("blobstore: %w", err)
	}
	if betweenHideAndCheck != nil {
		betweenHideAndCheck(key)
	}
	info, err := os.Stat(hidden)
	if err == nil && !info.ModTime().Before(cutoff) {
		return false, 0, d.unhide(hidden, p)
	}
	if err == nil {
		err = os.Remove(hidden)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil // another gc put it back (Unhide)
	}
	if err != nil {
		return false, 0, fmt.Errorf("blobstore: %w", err)
	}
	return true, info.Size(), nil
}

// Unhide puts back a blob that a RemoveUnused cut off (a gc killed
// mid-way) left under its hidden name; hiddenKey is that name's key. It
// then ages like any other: its time is its last use's.
func (d *Dir) Unhide(hiddenKey string) error {
	h, err := d.path(hiddenKey)
	if err != nil {
		return err
	}
	base := strings.TrimPrefix(filepath.Base(h), HiddenPrefix)
	dot := strings.LastIndexByte(base, '.')
	if base == filepath.Base(h) || dot <= 0 {
		return fmt.Errorf("blobstore: %s is not a hidden blob", hiddenKey)
	}
	return d.unhide(h, filepath.Join(filepath.Dir(h), base[:dot]))
}

// unhide puts hidden back as p, unless p was committed again meanwhile:
// then the newer blob stays, and hidden goes.
func (d *Dir) unhide(hidden, p string) error {
	err := os.Link(hidden, p) // fails if p exists: never over a newer commit
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// A file system without hard links. A commit between the check
		// and the rename is replaced by the older blob: for a content
		// address, the same bytes.
		if _, serr := os.Lstat(p); serr != nil {
			if err := os.Rename(hidden, p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("blobstore: putting back %s: %w", p, err)
			}
			return nil
		}
	}
	if err := os.Remove(hidden); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}
