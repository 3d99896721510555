package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"gocloud.dev/blob"
)

// Lister is a Store that can list the committed blobs directly under a
// prefix. The fetch workers of a batch find each other's small records
// with it (package politeness).
type Lister interface {
	// List returns the keys of the blobs directly under prefix + "/",
	// sorted (not those further down). A prefix that holds nothing is an
	// empty list.
	List(ctx context.Context, prefix string) ([]string, error)
}

// List implements Lister. Hidden files (blobs being written) are left
// out.
func (d *Dir) List(_ context.Context, prefix string) ([]string, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	p, err := d.path(prefix)
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
	var keys []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			keys = append(keys, prefix+"/"+e.Name())
		}
	}
	return keys, nil // ReadDir sorts by name
}

// List implements Lister.
func (b *Bucket) List(ctx context.Context, prefix string) ([]string, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	if err := checkKey(prefix); err != nil {
		return nil, err
	}
	it := b.B.List(&blob.ListOptions{Prefix: prefix + "/", Delimiter: "/"})
	var keys []string
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("blobstore: listing %s: %w", prefix, err)
		}
		if !obj.IsDir {
			keys = append(keys, obj.Key)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
