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
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// IDKey is where a store keeps its identity, at its root.
const IDKey = ".batchfetch-store"

// Identifier is a Store that knows its identity: a random ID written at
// its root the first time anyone asks, the same for every process that
// opens the same store. Workers compare it to tell whether they share a
// store (a directory path can name different disks on different hosts).
type Identifier interface {
	ID(ctx context.Context) (string, error)
}

// ID returns s's identity, or "" for a store that keeps none.
func ID(ctx context.Context, s Store) (string, error) {
	if i, ok := s.(Identifier); ok {
		return i.ID(ctx)
	}
	return "", nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func parseID(b []byte) (string, error) {
	id := strings.TrimSpace(string(b))
	if id == "" || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return "", fmt.Errorf("blobstore: %s at the store's root holds no store identity (%q): delete it and restart the workers", IDKey, id)
	}
	return id, nil
}

// ID implements Identifier. The first writer wins: the ID is linked into
// place, never overwritten.
func (d *Dir) ID(context.Context) (string, error) {
	p := filepath.Join(d.Root, IDKey)
	b, err := os.ReadFile(p)
	if err == nil {
		return parseID(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("blobstore: %w", err)
	}
	tmp := p + ".tmp-" + newID()
	if err := writeSynced(tmp, newID()+"\n"); err != nil {
		return "", fmt.Errorf("blobstore: %w", err)
	}
	err = os.Link(tmp, p)
	_ = os.Remove(tmp)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// A file system without hard links: create it exclusively.
		if cerr := writeSynced(p, newID()+"\n"); cerr != nil && !errors.Is(cerr, fs.ErrExist) {
			return "", fmt.Errorf("blobstore: creating %s: %w", p, cerr)
		}
	}
	if err := syncDir(d.Root); err != nil {
		return "", fmt.Errorf("blobstore: syncing %s: %w", d.Root, err)
	}
	if b, err = os.ReadFile(p); err != nil {
		return "", fmt.Errorf("blobstore: %w", err)
	}
	return parseID(b)
}

// ID implements Identifier, with a conditional write (if not exists).
func (b *Bucket) ID(ctx context.Context) (string, error) {
	read := func() (string, error) {
		r, err := b.B.NewReader(ctx, IDKey, nil)
		if err != nil {
			return "", err
		}
		defer r.Close()
		data, err := io.ReadAll(io.LimitReader(r, 1024))
		if err != nil {
			return "", err
		}
		return parseID(data)
	}
	id, err := read()
	if gcerrors.Code(err) != gcerrors.NotFound {
		return id, err
	}
	w, err := b.B.NewWriter(ctx, IDKey, &blob.WriterOptions{IfNotExist: true})
	if err != nil {
		return "", fmt.Errorf("blobstore: %w", err)
	}
	_, _ = io.WriteString(w, newID()+"\n")
	if err := w.Close(); err != nil && gcerrors.Code(err) != gcerrors.FailedPrecondition {
		return "", fmt.Errorf("blobstore: writing the store identity: %w", err)
	}
	return read()
}

// writeSynced writes a new file that holds text, synced.
func writeSynced(name, text string) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if err == nil {
		err = fsync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(name)
	}
	return err
}
