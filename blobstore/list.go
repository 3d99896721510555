package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"gocloud.dev/blob"
)

// Listed is one committed blob a List found.
type Listed struct {
	Key     string
	ModTime time.Time
	Size    int64
}

// Lister is a Store that can list the committed blobs directly under a
// prefix (not those under its sub-prefixes), at most max of them.
type Lister interface {
	List(ctx context.Context, prefix string, max int) ([]Listed, error)
}

// List implements Lister. A prefix with nothing under it lists nothing;
// blobs being written (not committed) are not listed.
func (d *Dir) List(_ context.Context, prefix string, max int) ([]Listed, error) {
	p, err := d.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	var out []Listed
	for _, e := range entries {
		if len(out) >= max {
			break
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue // a sub-prefix, or a blob being written
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Listed{Key: strings.TrimSuffix(prefix, "/") + "/" + e.Name(), ModTime: info.ModTime(), Size: info.Size()})
	}
	return out, nil
}

// List implements Lister.
func (b *Bucket) List(ctx context.Context, prefix string, max int) ([]Listed, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkKey(prefix); err != nil {
		return nil, err
	}
	it := b.B.List(&blob.ListOptions{Prefix: prefix + "/", Delimiter: "/"})
	var out []Listed
	for len(out) < max {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: listing %s: %w", prefix, err)
		}
		if obj.IsDir {
			continue
		}
		out = append(out, Listed{Key: obj.Key, ModTime: obj.ModTime, Size: obj.Size})
	}
	return out, nil
}
