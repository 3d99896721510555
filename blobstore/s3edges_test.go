//go:build cluster

package blobstore_test

import (
	"bytes"
	"context"
	"strconv"
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

// TestS3PartBoundaries: bodies and cuts at, just before and just after
// the end of a part. A whole body reads back as written; a paused writer
// keeps every byte; a killed one keeps its full parts, which is what
// Kept says, and the next writer resumes from there.
func TestS3PartBoundaries(t *testing.T) {
	srv := s3test.Start(t)
	srv.SetEnv(t)
	s := s3Store(t, srv, "boundaries")
	ctx := context.Background()
	part := blobstore.S3PartSize
	body := randomBody(3*part + 17)
	write := func(t *testing.T, key string, n int64) blobstore.PausableWriter {
		t.Helper()
		w, err := s.CreateResumable(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < n; off += 64 << 10 {
			if _, err := w.Write(body[off:min(off+64<<10, n)]); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	for _, n := range []int64{0, 1, part - 1, part, part + 1, 2 * part, 2*part + 1, 3 * part} {
		t.Run("commit "+strconv.FormatInt(n, 10), func(t *testing.T) {
			key := "batches/r/whole." + strconv.FormatInt(n, 10)
			w := write(t, key, n)
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := get(t, s, key); !bytes.Equal(got, body[:n]) {
				t.Fatalf("read %d bytes back, not the %d written", len(got), n)
			}
		})
	}
	for _, cut := range []int64{part - 1, part, part + 1, 2 * part} {
		t.Run("pause at "+strconv.FormatInt(cut, 10), func(t *testing.T) {
			from := "batches/r/paused." + strconv.FormatInt(cut, 10)
			w := write(t, from, cut)
			if err := w.Pause(); err != nil {
				t.Fatal(err)
			}
			if n, crc := w.(blobstore.Keeper).Kept(); n != cut || crc != crc32c(body[:cut]) {
				t.Fatalf("a paused writer kept %d bytes, want all %d written", n, cut)
			}
			resumeAndFinish(t, s, from, from+".next", body, cut)
		})
		t.Run("kill at "+strconv.FormatInt(cut, 10), func(t *testing.T) {
			from := "batches/r/killed." + strconv.FormatInt(cut, 10)
			w := write(t, from, cut) // never closed: its process dies
			n, crc := w.(blobstore.Keeper).Kept()
			if want := cut / part * part; n != want || crc != crc32c(body[:n]) {
				t.Fatalf("a writer of %d bytes keeps %d, want its full parts' %d", cut, n, want)
			}
			if n == 0 {
				if _, err := s.ResumeFrom(ctx, from+".next", from, 1, nil); err == nil {
					t.Fatal("resumed from a writer that uploaded no part")
				}
				return
			}
			resumeAndFinish(t, s, from, from+".next", body, n)
		})
	}
	if err := s.DeletePrefix(ctx, "batches/r"); err != nil {
		t.Fatal(err)
	}
	if left := srv.Keys(t, "boundaries"); len(left) != 0 {
		t.Errorf("left in the bucket: %q", left)
	}
}
