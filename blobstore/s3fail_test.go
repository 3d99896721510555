//go:build cluster

package blobstore_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/s3test"
)

// TestS3FailedPartKeepsAPrefix: a part whose upload fails (the attempt's
// context canceled mid-request, S3 unreachable) is not lost from the
// writer. What the writer keeps, and Kept with its CRC, is a prefix of
// what was written to it, never bytes from further on at the offset of
// the lost ones: a checkpoint names Kept, and the next attempt appends
// the rest of the body after it.
func TestS3FailedPartKeepsAPrefix(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	s := s3Store(t, srv, "failed-part")
	part := blobstore.S3PartSize
	body := randomBody(4*part + 99)
	for _, c := range []struct {
		name   string
		before int64 // written while the context is live
	}{
		{"first part", part - 1000},
		{"third part", 3*part - 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := "batches/r/" + c.name
			ctx, cancel := context.WithCancel(context.Background())
			w, err := s.CreateResumable(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(body[:c.before]); err != nil {
				t.Fatal(err)
			}
			cancel() // as an attempt's timeout does, mid-body
			if _, err := w.Write(body[c.before : c.before+5000]); err == nil {
				t.Fatal("a write that fills a part took no upload")
			}
			if err := w.Pause(); err != nil {
				t.Fatal(err)
			}
			n, crc := w.(blobstore.Keeper).Kept()
			got := get(t, s, key)
			if int64(len(got)) != n || crc != crc32c(body[:n]) || !bytes.Equal(got, body[:len(got)]) {
				t.Errorf("kept %d bytes (crc %08x; the body's first %d: %08x); the object holds %d bytes, a prefix of the body: %v",
					n, crc, n, crc32c(body[:n]), len(got), bytes.Equal(got, body[:len(got)]))
			}
			if n < c.before {
				t.Errorf("kept %d bytes, fewer than the %d written before the failed part", n, c.before)
			}
		})
	}
}
