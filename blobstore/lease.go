package blobstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ErrExists is returned by CreateNew for a key that already holds a blob.
var ErrExists = errors.New("blob already exists")

// ErrNoLeases is returned by CreateNew of a store that turns out unable
// to create a blob only where none is (an object store without
// conditional writes).
var ErrNoLeases = errors.New("this blob store cannot create a blob only where none is")

// Leaser is a Store in which workers can take small records exclusively:
// of two workers creating one key at once, exactly one succeeds. The
// fetch workers of a batch hold its per-host in-flight limit with such
// records (package politeness).
type Leaser interface {
	Remover
	Lister
	// CreateNew writes data under key only if no blob is there; it
	// returns ErrExists otherwise. A reader sees all of data or nothing.
	CreateNew(ctx context.Context, key string, data []byte) error
}

// CreateNew implements Leaser: the record is written to a hidden
// temporary file and hard-linked to its key, which fails when the key
// exists (link is atomic, also on NFS, and the record is whole before
// it has its name).
func (d *Dir) CreateNew(_ context.Context, key string, data []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".new-"+hex.EncodeToString(suffix[:]))
	f, err := create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("blobstore: %w", werr)
	}
	if err := os.Link(tmp, p); err != nil {
		switch {
		case errors.Is(err, fs.ErrExist):
			return fmt.Errorf("blobstore: %s: %w", key, ErrExists)
		case errors.Is(err, errors.ErrUnsupported), errors.Is(err, fs.ErrPermission):
			// A file system without hard links (the temporary file
			// was made, so the directory is writable).
			return fmt.Errorf("blobstore: %w (%v)", ErrNoLeases, err)
		}
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// CreateNew implements Leaser with a conditional write (IfNotExist). A
// bucket whose service does not do them returns ErrNoLeases.
func (b *Bucket) CreateNew(ctx context.Context, key string, data []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := b.B.WriteAll(ctx, key, data, &blob.WriterOptions{IfNotExist: true, ContentType: "application/json"})
	switch gcerrors.Code(err) {
	case gcerrors.OK:
		return nil
	case gcerrors.FailedPrecondition, gcerrors.AlreadyExists:
		return fmt.Errorf("blobstore: %s: %w", key, ErrExists)
	case gcerrors.Unimplemented:
		return fmt.Errorf("blobstore: %w", ErrNoLeases)
	}
	return fmt.Errorf("blobstore: %w", err)
}
