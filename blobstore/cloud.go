package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/memblob"   // mem://
	_ "gocloud.dev/blob/s3blob"    // s3://
	"gocloud.dev/gcerrors"
)

// Open returns the Store a location names: a directory path or file:///path
// (a Dir, which can resume cut-off downloads), or an object store URL that
// gocloud.dev/blob understands: s3://bucket?region=eu-west-1,
// gs://bucket, azblob://container, mem:// (in memory, for tests).
// Workers on different machines share bodies through an object store.
func Open(ctx context.Context, location string) (Store, error) {
	if location == "" {
		return nil, errors.New("blobstore: empty location")
	}
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // a path (or a Windows drive letter)
		return NewDir(location)
	}
	if u.Scheme == "file" {
		return NewDir(filepath.FromSlash(u.Path))
	}
	b, err := blob.OpenBucket(ctx, location)
	if err != nil {
		// gocloud's error repeats the URL, a password in it too.
		return nil, fmt.Errorf("blobstore: opening %s: %s", Redacted(location), strings.ReplaceAll(err.Error(), location, Redacted(location)))
	}
	return openS3(b, location), nil
}

// Bucket is a Store on a gocloud.dev/blob bucket.
type Bucket struct {
	B *blob.Bucket
}

// Create implements Store. gocloud buckets publish a blob only when its
// writer closes; canceling the writer's context aborts it.
func (b *Bucket) Create(ctx context.Context, key string) (Writer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w, err := b.B.NewWriter(wctx, key, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return &bucketWriter{w: w, cancel: cancel}, nil
}

type bucketWriter struct {
	w      *blob.Writer
	cancel context.CancelFunc
	done   bool
}

func (w *bucketWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

func (w *bucketWriter) Commit() error {
	if w.done {
		return errors.New("blobstore: blob already committed or aborted")
	}
	w.done = true
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

func (w *bucketWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.cancel()
	_ = w.w.Close() // fails: the write is abandoned
	return nil
}

// Open implements Store.
func (b *Bucket) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r, err := openIdle(ctx, key, func(ctx context.Context) (io.ReadCloser, error) { return b.B.NewReader(ctx, key, nil) })
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return r, nil
}

// OpenRange reads the n bytes of key from off (fewer where the blob ends
// first) with one request, where Open and a seek would make two.
func (b *Bucket) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r, err := openIdle(ctx, key, func(ctx context.Context) (io.ReadCloser, error) { return b.B.NewRangeReader(ctx, key, off, n, nil) })
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("blobstore: %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	return r, nil
}

// DeletePrefix implements Store.
func (b *Bucket) DeletePrefix(ctx context.Context, prefix string) error {
	if err := checkKey(prefix); err != nil {
		return err
	}
	it := b.B.List(&blob.ListOptions{Prefix: strings.TrimSuffix(prefix, "/") + "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("blobstore: listing %s: %w", prefix, err)
		}
		if err := b.B.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return fmt.Errorf("blobstore: %w", err)
		}
	}
	// A prefix may also name one blob (an uploaded URL list).
	if err := b.B.Delete(ctx, prefix); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// Remove deletes the one object under key, never a prefix. An object
// that is not there is no error.
func (b *Bucket) Remove(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := b.B.Delete(ctx, key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("blobstore: %w", err)
	}
	return nil
}

// Close releases the bucket.
func (b *Bucket) Close() error { return b.B.Close() }
