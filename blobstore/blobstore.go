// Package blobstore keeps fetched bodies out of workflow history: the fetch
// activity streams a body into a blob, passes the blob's key through Temporal,
// and the CPU activity streams it back.
package blobstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// ErrNotFound is returned by Open for a key that holds no blob.
var ErrNotFound = errors.New("blob not found")

// Store holds blobs under slash-separated keys such as "batches/<run>/000042".
type Store interface {
	// Create starts a blob. Nothing is visible under key until Commit; Abort
	// (or a crash) leaves no blob under key.
	Create(ctx context.Context, key string) (Writer, error)
	// Open reads a committed blob. It returns ErrNotFound when there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// DeletePrefix removes every blob (committed or not) under prefix + "/".
	DeletePrefix(ctx context.Context, prefix string) error
}

// Remover is a Store that can delete one blob, never a prefix.
type Remover interface {
	Remove(ctx context.Context, key string) error
}

// Writer is a blob being written.
type Writer interface {
	io.Writer
	// Commit makes the blob visible under its key, replacing any earlier one.
	Commit() error
	// Abort discards what was written. It is safe after Commit (a no-op).
	Abort() error
}

// Resumer is a Store that can keep an unfinished blob for a later writer:
// a download cut off part-way continues where it stopped.
//
// Every writer has a key of its own: a new attempt never reopens an older
// attempt's file, it copies the kept prefix into its own. A writer that an
// older attempt still holds open (a frozen process that wakes up) can then
// never touch the new attempt's bytes.
type Resumer interface {
	// CreateResumable starts a blob like Create; its Writer also has
	// Pause, which keeps what was written for ResumeFrom.
	CreateResumable(ctx context.Context, key string) (PausableWriter, error)
	// ResumeFrom starts a resumable blob under key that begins with the
	// first offset bytes a paused writer of from kept. The copied bytes
	// are also written to tee (when not nil), so the caller can check
	// them. from's kept bytes are released once copied. It fails when
	// fewer than offset bytes were kept.
	ResumeFrom(ctx context.Context, key, from string, offset int64, tee io.Writer) (PausableWriter, error)
	// Discard releases what a paused writer of key kept.
	Discard(ctx context.Context, key string) error
}

// PausableWriter is a Writer that can stop without committing or
// discarding.
type PausableWriter interface {
	Writer
	// Pause closes the writer and keeps what it wrote for Resume.
	Pause() error
}

// Dir is a Store in a local directory (or a volume shared by the workers).
type Dir struct {
	Root string
}

// NewDir returns a Store rooted at root, creating the directory if needed.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("blobstore: empty directory")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return &Dir{Root: root}, nil
}

// checkKey accepts relative, clean, slash-separated keys only.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || path.Clean(key) != key || strings.HasPrefix(key, "..") || strings.Contains(key, "\\") {
		return fmt.Errorf("blobstore: invalid key %q", key)
	}
	return nil
}

func (d *Dir) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, filepath.FromSlash(key)), nil
}

// Create implements Store. The blob is written to a hidden temporary file
// beside its final name and renamed on Commit.
func (d *Dir) Create(_ context.Context, key string) (Writer, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	f, err := create(filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-"+hex.EncodeToString(suffix[:])))
	if err != nil {
		return nil, err
	}
	return &dirWriter{f: f, final: p, scratch: isScratch(key)}, nil
}

// ScratchPrefix is where batches keep what lives only while they run
// (bodies between fetch and hash, chunk files, checkpoints): every one is
// checked (size, CRC-32C) before it is used, and fetched again if a crash
// lost it, so it is renamed into place without the syncs that make the
// durable blobs (results, kept bodies, inputs) survive a host crash.
const ScratchPrefix = "batches/"

func isScratch(key string) bool { return strings.HasPrefix(key, ScratchPrefix) }

// partial is where a resumable blob grows: one name per key, and every
// writer has a key of its own.
func partial(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".partial")
}

// CreateResumable implements Resumer.
func (d *Dir) CreateResumable(_ context.Context, key string) (PausableWriter, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := create(partial(p))
	if err != nil {
		return nil, err
	}
	return &dirWriter{f: f, final: p, scratch: isScratch(key)}, nil
}

// ResumeFrom implements Resumer.
func (d *Dir) ResumeFrom(_ context.Context, key, from string, offset int64, tee io.Writer) (PausableWriter, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	fp, err := d.path(from)
	if err != nil {
		return nil, err
	}
	src, err := os.Open(partial(fp))
	if err != nil {
		return nil, fmt.Errorf("blobstore: resuming from %s: %w", from, err)
	}
	defer func() {
		src.Close()
		_ = os.Remove(partial(fp)) // released: the new attempt holds its own copy
	}()
	dst, err := create(partial(p))
	if err != nil {
		return nil, err
	}
	var w io.Writer = dst
	if tee != nil {
		w = io.MultiWriter(dst, tee)
	}
	n, err := io.Copy(w, io.LimitReader(src, offset))
	if err == nil && n < offset {
		err = fmt.Errorf("only %d of %d bytes were kept", n, offset)
	}
	if err != nil {
		dst.Close()
		_ = os.Remove(dst.Name())
		return nil, fmt.Errorf("blobstore: resuming %s from %s: %w", key, from, err)
	}
	return &dirWriter{f: dst, final: p, scratch: isScratch(key)}, nil
}

// Discard implements Resumer.
func (d *Dir) Discard(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(partial(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// dirWriter writes a blob to a hidden file that Commit renames to final
// (see CommitFile). remake: final's directory is not the hidden file's,
// and is made again if it vanished.
type dirWriter struct {
	f       *os.File
	final   string
	remake  bool
	scratch bool // under ScratchPrefix: not synced
	done    bool
}

func (w *dirWriter) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *dirWriter) Commit() error {
	if w.done {
		return errors.New("blobstore: blob already committed or aborted")
	}
	w.done = true
	if err := commitFile(w.f, w.final, w.remake, !w.scratch); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

func (w *dirWriter) Pause() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.f.Close()
}

func (w *dirWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	_ = w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// Open implements Store.
func (d *Dir) Open(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return f, nil
}

// DeletePrefix implements Store.
func (d *Dir) DeletePrefix(_ context.Context, prefix string) error {
	p, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	// Remove parents left empty (batches/<run> -> batches), never the
	// root. A writer of this store that made one of them and has not yet
	// put its file in it makes it again (create).
	for dir := filepath.Dir(p); dir != filepath.Clean(d.Root) && strings.HasPrefix(dir, filepath.Clean(d.Root)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// Packer is a Store that can hold many small blobs in one: a chunk of a
// batch writes one file for its small bodies instead of one file each
// (creating a file costs far more than writing a few KiB on many disks).
type Packer interface {
	// CreatePack starts a pack under key, which must not exist.
	CreatePack(ctx context.Context, key string) (Pack, error)
}

// Pack is a blob written by appending. The bytes of an Append are in the
// blob, at the offset it returns, once it returns: Open(key) reads them
// from this machine. Other machines on a shared volume may see them only
// after Sync or Close. A writer that dies leaves every completed Append
// intact (every synced one, if the machine dies). On an object store
// (S3Bucket) the bytes are in the blob only once a Sync that counts them,
// or Close, has returned, and a writer that dies leaves what was synced;
// Append fails with ErrPackFull once the pack takes no more bodies (those
// it took are kept), and the writer starts another.
type Pack interface {
	Append(p []byte) (offset int64, err error)
	// Sync makes the bytes appended so far durable and returns how many
	// that is.
	Sync() (int64, error)
	Close() error
}

// ErrPackFull is Append's error on a pack that takes no more bodies.
var ErrPackFull = errors.New("blobstore: pack full")

// CreatePack implements Packer.
func (d *Dir) CreatePack(_ context.Context, key string) (Pack, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := create(p)
	if err != nil {
		return nil, err
	}
	return &dirPack{f: f}, nil
}

type dirPack struct {
	mu  sync.Mutex
	f   *os.File
	off int64
	err error
	// dirSynced: the pack's name is durable in its directory (the
	// first Sync syncs it).
	dirSynced bool
}

func (p *dirPack) Append(b []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return 0, p.err
	}
	off := p.off
	n, err := p.f.Write(b)
	p.off += int64(n)
	if err != nil {
		// A short write leaves bytes no item points at; later appends
		// would still be at the right offsets, but a failing disk is
		// better given up on.
		p.err = fmt.Errorf("blobstore: appending to %s: %w", p.f.Name(), err)
		return 0, p.err
	}
	return off, nil
}

func (p *dirPack) Sync() (int64, error) {
	p.mu.Lock()
	n, f, dirSynced := p.off, p.f, p.dirSynced
	p.mu.Unlock()
	if err := fsync(f); err != nil {
		return 0, fmt.Errorf("blobstore: syncing %s: %w", f.Name(), err)
	}
	if !dirSynced {
		// A pack is created in place: its bytes are durable only once
		// its name is.
		if err := syncDir(filepath.Dir(f.Name())); err != nil {
			return 0, fmt.Errorf("blobstore: syncing the directory of %s: %w", f.Name(), err)
		}
		p.mu.Lock()
		p.dirSynced = true
		p.mu.Unlock()
	}
	return n, nil
}

func (p *dirPack) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = errors.New("blobstore: pack closed")
	}
	return p.f.Close()
}
