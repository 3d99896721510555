package blobstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"gocloud.dev/gcerrors"
)

// Unnamed is a Store whose blobs can be named when they are committed:
// a content-addressed blob's key is known only once its bytes are.
type Unnamed interface {
	// CreateUnnamed starts a blob that CommitAs names. Until then it is a
	// hidden file (or object) under dir, which an Abort, or a crash and
	// RemoveStale, removes.
	CreateUnnamed(ctx context.Context, dir string) (UnnamedWriter, error)
}

// UnnamedWriter is a blob being written whose key comes at the end.
type UnnamedWriter interface {
	io.Writer
	// CommitAs makes the blob visible under key, replacing any earlier
	// one (for a content-addressed key, with the same bytes).
	CommitAs(key string) error
	// Abort discards the blob. It is safe after CommitAs (a no-op).
	Abort() error
}

// UnnamedPrefix starts the base name of an unnamed blob's hidden file.
const UnnamedPrefix = ".unnamed-"

func unnamedName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return UnnamedPrefix + hex.EncodeToString(b[:])
}

// CreateUnnamed implements Unnamed.
func (d *Dir) CreateUnnamed(_ context.Context, dir string) (UnnamedWriter, error) {
	p, err := d.path(path.Join(dir, "x"))
	if err != nil {
		return nil, err
	}
	f, err := create(filepath.Join(filepath.Dir(p), unnamedName()))
	if err != nil {
		return nil, err
	}
	return &dirUnnamed{dirWriter: &dirWriter{f: f, remake: true}, d: d}, nil
}

// dirUnnamed is a dirWriter whose final name comes at the end.
type dirUnnamed struct {
	*dirWriter
	d *Dir
}

func (w *dirUnnamed) CommitAs(key string) error {
	p, err := w.d.path(key)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(p), 0o755)
	}
	if err != nil {
		_ = w.Abort()
		return fmt.Errorf("blobstore: %w", err)
	}
	if betweenMkdirAndUse != nil {
		betweenMkdirAndUse(filepath.Dir(p))
	}
	w.final = p
	return w.Commit()
}

// CreateUnnamed implements Unnamed: the object is written under a hidden
// key, then copied to its name and deleted.
func (b *Bucket) CreateUnnamed(ctx context.Context, dir string) (UnnamedWriter, error) {
	tmp := path.Join(dir, unnamedName())
	w, err := b.Create(ctx, tmp)
	if err != nil {
		return nil, err
	}
	return &bucketUnnamed{b: b, w: w, tmp: tmp, ctx: ctx}, nil
}

type bucketUnnamed struct {
	b   *Bucket
	w   Writer
	tmp string
	ctx context.Context
}

func (w *bucketUnnamed) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w *bucketUnnamed) CommitAs(key string) error {
	if err := checkKey(key); err != nil {
		_ = w.w.Abort()
		return err
	}
	if err := w.w.Commit(); err != nil {
		return err
	}
	defer func() { _ = w.b.B.Delete(context.WithoutCancel(w.ctx), w.tmp) }()
	if err := w.b.B.Copy(w.ctx, key, w.tmp, nil); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

func (w *bucketUnnamed) Abort() error {
	err := w.w.Abort()
	if derr := w.b.B.Delete(context.WithoutCancel(w.ctx), w.tmp); derr != nil && gcerrors.Code(derr) != gcerrors.NotFound {
		return derr
	}
	return err
}
