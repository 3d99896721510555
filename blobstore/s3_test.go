//go:build cluster

// The store's checks against a real S3 server (SeaweedFS, built by
// internal/s3test and run on loopback):
//
//	go test -tags cluster -run TestS3 -v ./blobstore
package blobstore_test

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
)

// s3Store opens a bucket of the test's own on srv, with the s3blob
// options a user of an S3-compatible server sets (s3test.Server.URL).
func s3Store(t *testing.T, srv *s3test.Server, bucket string) *blobstore.S3Bucket {
	t.Helper()
	if _, err := srv.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("creating bucket %s: %v", bucket, err)
	}
	s, err := blobstore.Open(context.Background(), srv.URL(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := s.(*blobstore.S3Bucket)
	if !ok {
		t.Fatalf("an s3:// location opened as %T, want *blobstore.S3Bucket", s)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestS3Conformance runs the checks every backend passes (TestStores,
// TestCreateNew, TestList) against the real server.
func TestS3Conformance(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	t.Run("store", func(t *testing.T) { checkStore(t, s3Store(t, srv, "conformance-store")) })
	t.Run("create-new", func(t *testing.T) { checkCreateNew(t, s3Store(t, srv, "conformance-lease")) })
	t.Run("list", func(t *testing.T) { checkList(t, s3Store(t, srv, "conformance-list")) })
	t.Run("large", func(t *testing.T) {
		// Through gocloud's own writer (the transfer manager's multipart
		// upload), which the default request checksums used to break on
		// S3-compatible servers.
		s := s3Store(t, srv, "conformance-large")
		body := randomBody(3*blobstore.S3PartSize + 12345)
		put(t, s, "batches/r/large", body)
		if got := get(t, s, "batches/r/large"); !bytes.Equal(got, body) {
			t.Fatalf("read %d bytes back, want the %d written", len(got), len(body))
		}
	})
}

// TestS3ResumeFromCopiesIntoANewKey: as on a directory, a resumed writer
// starts from a copy of what a paused one kept, under a key of its own;
// the old writer cannot touch it, and the kept bytes are released.
func TestS3ResumeFromCopiesIntoANewKey(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	s := s3Store(t, srv, "resume-paused")
	ctx := context.Background()
	body := randomBody(2*blobstore.S3PartSize + 777)
	cut := blobstore.S3PartSize + 1000 // mid-way through the second part

	old, err := s.CreateResumable(ctx, "batches/r/x.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Write(body[:cut]); err != nil {
		t.Fatal(err)
	}
	if n, crc := old.(blobstore.Keeper).Kept(); n != blobstore.S3PartSize || crc != crc32c(body[:n]) {
		t.Errorf("before the pause, %d bytes kept (crc %08x), want one part, %d", n, crc, blobstore.S3PartSize)
	}
	if err := old.Pause(); err != nil {
		t.Fatal(err)
	}
	if n, crc := old.(blobstore.Keeper).Kept(); n != cut || crc != crc32c(body[:cut]) {
		t.Errorf("after the pause, %d bytes kept, want all %d written", n, cut)
	}
	resumeAndFinish(t, s, "batches/r/x.1", "batches/r/x.2", body, cut)
	if _, err := old.Write([]byte("STALE")); err == nil {
		t.Error("the paused writer took a write")
	}
	if _, err := s.ResumeFrom(ctx, "batches/r/x.3", "batches/r/x.1", cut, nil); err == nil {
		t.Error("resumed from kept bytes already released")
	}
	if err := s.DeletePrefix(ctx, "batches/r"); err != nil {
		t.Fatal(err)
	}
	if left := srv.Keys(t, "resume-paused"); len(left) != 0 {
		t.Errorf("left in the bucket: %q", left)
	}
}

// TestS3ResumeAfterAKill: a writer whose process dies leaves an
// unfinished upload. What its parts hold, as Kept said, is what the next
// attempt resumes from; its lost buffer is not.
func TestS3ResumeAfterAKill(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	s := s3Store(t, srv, "resume-killed")
	ctx := context.Background()
	body := randomBody(3*blobstore.S3PartSize + 4321)

	w, err := s.CreateResumable(ctx, "batches/r/y.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body[:2*blobstore.S3PartSize+999]); err != nil {
		t.Fatal(err)
	}
	kept, crc := w.(blobstore.Keeper).Kept()
	if kept != 2*blobstore.S3PartSize || crc != crc32c(body[:kept]) {
		t.Fatalf("%d bytes kept (crc %08x), want two parts' %d", kept, crc, 2*blobstore.S3PartSize)
	}
	// The process dies here: w is never closed. A checkpoint naming
	// more than was kept cannot be resumed.
	if _, err := s.ResumeFrom(ctx, "batches/r/y.bad", "batches/r/y.1", kept+1, nil); err == nil {
		t.Error("resumed more bytes than the parts held")
	}
	w2, err := s.CreateResumable(ctx, "batches/r/z.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write(body[:2*blobstore.S3PartSize+5]); err != nil {
		t.Fatal(err)
	}
	k2, _ := w2.(blobstore.Keeper).Kept()
	resumeAndFinish(t, s, "batches/r/z.1", "batches/r/z.2", body, k2)

	// A batch's cleanup aborts what a killed writer left unfinished.
	w3, _ := s.CreateResumable(ctx, "batches/r/w.1")
	_, _ = w3.Write(body[:blobstore.S3PartSize+1])
	if err := s.DeletePrefix(ctx, "batches/r"); err != nil {
		t.Fatal(err)
	}
	if left := srv.Keys(t, "resume-killed"); len(left) != 0 {
		t.Errorf("left in the bucket after the batch's cleanup: %q", left)
	}
}

// resumeAndFinish resumes to under key from from's first offset bytes,
// checks the copy against body, writes the rest, and reads the whole
// body back.
func resumeAndFinish(t *testing.T, s *blobstore.S3Bucket, from, key string, body []byte, offset int64) {
	t.Helper()
	ctx := context.Background()
	tee := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	w, err := s.ResumeFrom(ctx, key, from, offset, tee)
	if err != nil {
		t.Fatal(err)
	}
	if tee.Sum32() != crc32c(body[:offset]) {
		t.Fatalf("the copied %d bytes are not the body's", offset)
	}
	if _, err := w.Write(body[offset:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, key); !bytes.Equal(got, body) {
		t.Fatalf("resumed blob: %d bytes, not the body's %d", len(got), len(body))
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

func randomBody(n int64) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, s blobstore.Store, key string, body []byte) {
	t.Helper()
	w, err := s.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s blobstore.Store, key string) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, r); err != nil {
		t.Fatal(err)
	}
	return []byte(b.String())
}
