//go:build cluster

package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batchfetch/batchfetch/internal/s3test"
)

func startS3(t *testing.T) (*s3test.Server, *S3Bucket) {
	t.Helper()
	srv := s3test.Start(t)
	srv.SetEnv(t)
	st, err := Open(context.Background(), srv.URL(s3test.Bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := st.(*S3Bucket)
	if !ok {
		t.Fatalf("Open gave a %T, want an S3Bucket", st)
	}
	return srv, b
}

func readAll(t *testing.T, s Store, key string) ([]byte, error) {
	t.Helper()
	r, err := s.Open(context.Background(), key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// A pack on S3 is one object. What a Sync counts is on the server; a Sync
// puts the pack again only once it has doubled, so Syncs every second
// do not upload it every second (or S3PackPutEvery after the last put);
// Close puts the rest.
func TestS3PackIsOneObjectPutAsItDoubles(t *testing.T) {
	srv, b := startS3(t)
	ctx := context.Background()
	p, err := b.CreatePack(ctx, "batches/r/w/pack.1")
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	add := func(s string) {
		t.Helper()
		off, err := p.Append([]byte(s))
		if err != nil || off != int64(len(all)) {
			t.Fatalf("Append(%q) = %d, %v; want offset %d", s, off, err, len(all))
		}
		all = append(all, s...)
	}
	sync := func(want int) {
		t.Helper()
		n, err := p.Sync()
		if err != nil || n != int64(want) {
			t.Fatalf("Sync = %d, %v; want %d", n, err, want)
		}
		got, err := readAll(t, b, "batches/r/w/pack.1")
		if err != nil || !bytes.Equal(got, all[:want]) {
			t.Fatalf("after Sync the pack reads %q, %v; want %q", got, err, all[:want])
		}
	}
	add("first body;")
	if _, err := readAll(t, b, "batches/r/w/pack.1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before a Sync the pack is readable (%v): it should be on this worker only", err)
	}
	sync(11)
	add("second")
	sync(11) // 17 bytes: not yet double
	add(" body, longer")
	sync(30)
	add("third")
	sync(30)
	defer func(d time.Duration) { S3PackPutEvery = d }(S3PackPutEvery)
	S3PackPutEvery = 0 // as if long enough had passed since the last put
	sync(35)
	add("fourth")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, b, "batches/r/w/pack.1"); err != nil || !bytes.Equal(got, all) {
		t.Fatalf("after Close the pack reads %q, %v; want %q", got, err, all)
	}
	if _, err := p.Append([]byte("late")); err == nil {
		t.Error("Append after Close succeeded")
	}
	if keys := nonID(srv.Keys(t, s3test.Bucket)); !slices.Equal(keys, []string{"batches/r/w/pack.1"}) {
		t.Errorf("bucket holds %q, want the one pack", keys)
	}
}

// DeletePrefix removes every object under the prefix, the object named
// by it, and unfinished uploads under it, in a request per page of keys
// (here, with a small page, several); it leaves a sibling prefix alone.
// Remove of a missing object is no error.
func TestS3DeletePrefixRemovesObjectsUploadsAndTheNamedObject(t *testing.T) {
	srv, b := startS3(t)
	defer func(n int) { s3DeleteBatch = n }(s3DeleteBatch)
	s3DeleteBatch = 2
	ctx := context.Background()
	for _, k := range []string{"batches/r/a", "batches/r/w/1", "batches/r/w/2", "batches/r/w/3", "batches/r", "batches/rr/keep"} {
		w, err := b.Create(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, "body of "+k)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s3test.Bucket), Key: aws.String("batches/r/w/killed")}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeletePrefix(ctx, "batches/r"); err != nil {
		t.Fatal(err)
	}
	if keys := nonID(srv.Keys(t, s3test.Bucket)); !slices.Equal(keys, []string{"batches/rr/keep"}) {
		t.Errorf("after DeletePrefix the bucket holds %q, want only batches/rr/keep", keys)
	}
	if err := b.Remove(ctx, "batches/never"); err != nil {
		t.Errorf("Remove of a missing object: %v", err)
	}
	if err := b.Remove(ctx, "batches/rr/keep"); err != nil {
		t.Fatal(err)
	}
	if keys := nonID(srv.Keys(t, s3test.Bucket)); len(keys) != 0 {
		t.Errorf("after Remove the bucket holds %q", keys)
	}
}

// A pack that reaches S3PackSize is put by the Append that takes it there,
// and takes no more: ErrPackFull, for the writer to start another.
func TestS3PackFullIsPutAndTakesNoMore(t *testing.T) {
	srv, b := startS3(t)
	defer func(n int64) { S3PackSize = n }(S3PackSize)
	S3PackSize = 10
	ctx := context.Background()
	p, err := b.CreatePack(ctx, "batches/r/w/pack.2")
	if err != nil {
		t.Fatal(err)
	}
	if off, err := p.Append([]byte("12345")); err != nil || off != 0 {
		t.Fatalf("Append = %d, %v", off, err)
	}
	if off, err := p.Append([]byte("6789012")); err != nil || off != 5 {
		t.Fatalf("the Append that fills the pack = %d, %v; want 5, nil", off, err)
	}
	if got, err := readAll(t, b, "batches/r/w/pack.2"); err != nil || string(got) != "123456789012" {
		t.Fatalf("the full pack reads %q, %v; want it put whole", got, err)
	}
	if _, err := p.Append([]byte("x")); !errors.Is(err, ErrPackFull) {
		t.Fatalf("Append to a full pack: %v, want ErrPackFull", err)
	}
	if n, err := p.Sync(); n != 12 || err != nil {
		t.Errorf("Sync of the full pack = %d, %v; want 12, nil", n, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if keys := nonID(srv.Keys(t, s3test.Bucket)); !slices.Equal(keys, []string{"batches/r/w/pack.2"}) {
		t.Errorf("bucket holds %q, want the one pack", keys)
	}
}

func nonID(keys []string) []string {
	return slices.DeleteFunc(keys, func(k string) bool { return strings.HasSuffix(k, IDKey) })
}
