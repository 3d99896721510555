package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Keeper is a PausableWriter whose kept bytes lag what was written to it:
// only what it has handed to the store outlives its process. Kept says how
// many bytes, from the start, would survive a kill now, and their CRC-32C
// (Castagnoli), for a checkpoint to name no more than that.
type Keeper interface {
	Kept() (n int64, crc32c uint32)
}

// S3PauseTimeout bounds how long a writer whose attempt was canceled
// takes to put what it holds on the server (Pause), or to abort its
// upload: a server that takes connections and never answers does not
// hold the attempt.
const S3PauseTimeout = 30 * time.Second

var castagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// CreateResumable implements Resumer: a multipart upload to key, begun
// once the body outgrows one part. A body that never does is written
// with one PutObject on Commit.
func (b *S3Bucket) CreateResumable(ctx context.Context, key string) (PausableWriter, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return &s3Writer{b: b, ctx: ctx, key: key}, nil
}

// s3Writer writes a body to S3 in parts of S3PartSize. The parts are
// uploaded as they fill; Commit completes the upload (the object appears
// whole, or not at all); Pause uploads what is left as a last part and
// completes the upload too, so that ResumeFrom can read it; Abort aborts
// it. A killed process leaves its upload unfinished: ResumeFrom completes
// it from its uploaded parts, and DeletePrefix (or the bucket's lifecycle
// rule) aborts it otherwise.
type s3Writer struct {
	b   *S3Bucket
	ctx context.Context
	key string

	buf   bytes.Buffer
	id    string // the multipart upload's, once begun
	parts []types.CompletedPart
	done  bool

	mu      sync.Mutex // kept, keptCRC: read by the heartbeat
	kept    int64
	keptCRC uint32
}

var _ Keeper = (*s3Writer)(nil)

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("blobstore: write after commit or abort")
	}
	w.reserve(len(p))
	w.buf.Write(p)
	for int64(w.buf.Len()) >= S3PartSize {
		// A part leaves the buffer only once it is on the server: one
		// whose upload failed (its context canceled mid-request, S3 out
		// of reach) stays, for Pause (or the next Write) to upload again,
		// so the parts hold the bytes written, in order, and no later
		// bytes ever take the place of lost ones. p is in the buffer.
		if err := w.uploadPart(w.buf.Bytes()[:S3PartSize]); err != nil {
			return len(p), err
		}
		w.buf.Next(int(S3PartSize))
	}
	return len(p), nil
}

// reserve makes room for n more bytes. A body that outgrows 1 MiB gets
// room for a whole part (and a write past it) at once: left to double, the
// buffer would reach twice the part size, twice the memory a large body
// on S3 takes while it downloads.
func (w *s3Writer) reserve(n int) {
	need := w.buf.Len() + n
	if need <= w.buf.Cap() || need <= 1<<20 || int64(w.buf.Cap()) >= S3PartSize {
		return
	}
	w.buf.Grow(int(S3PartSize) + max(n, 64<<10) - w.buf.Len())
}

// Kept implements Keeper.
func (w *s3Writer) Kept() (int64, uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kept, w.keptCRC
}

func (w *s3Writer) uploadPart(part []byte) error {
	if w.id == "" {
		out, err := w.b.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: &w.b.name, Key: aws.String(w.b.objectKey(w.key))})
		if err != nil {
			return fmt.Errorf("blobstore: starting the upload of %s: %w", w.key, err)
		}
		w.id = aws.ToString(out.UploadId)
	}
	n := int32(len(w.parts) + 1)
	out, err := w.b.client.UploadPart(w.ctx, &s3.UploadPartInput{Bucket: &w.b.name, Key: aws.String(w.b.objectKey(w.key)),
		UploadId: &w.id, PartNumber: &n, Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part)))})
	if err != nil {
		return fmt.Errorf("blobstore: uploading part %d of %s: %w", n, w.key, err)
	}
	w.parts = append(w.parts, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
	w.mu.Lock()
	w.kept += int64(len(part))
	w.keptCRC = crc32.Update(w.keptCRC, castagnoliTable, part)
	w.mu.Unlock()
	return nil
}

// finish puts what is buffered on the server and completes the upload.
func (w *s3Writer) finish() error {
	if w.id == "" {
		// One part or less: one request.
		body := w.buf.Bytes()
		if _, err := w.b.client.PutObject(w.ctx, &s3.PutObjectInput{Bucket: &w.b.name, Key: aws.String(w.b.objectKey(w.key)),
			Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body)))}); err != nil {
			return fmt.Errorf("blobstore: writing %s: %w", w.key, err)
		}
		w.keep(body)
		return nil
	}
	if w.buf.Len() > 0 {
		// The last part: the rest, however long (a part that failed
		// to upload is in it).
		if err := w.uploadPart(w.buf.Bytes()); err != nil {
			return err
		}
		w.buf.Reset()
	}
	return w.b.complete(w.ctx, w.key, w.id, w.parts)
}

func (w *s3Writer) keep(b []byte) {
	w.mu.Lock()
	w.kept += int64(len(b))
	w.keptCRC = crc32.Update(w.keptCRC, castagnoliTable, b)
	w.mu.Unlock()
}

func (w *s3Writer) Commit() error {
	if w.done {
		return errors.New("blobstore: blob already committed or aborted")
	}
	w.done = true
	if err := w.finish(); err != nil {
		w.abandon()
		return err
	}
	return nil
}

// Pause implements PausableWriter: what was written is kept under the
// writer's own key, for ResumeFrom. An attempt is mostly paused because
// it was canceled (its timeout, its worker stopping): the last part is
// uploaded all the same, within S3PauseTimeout.
func (w *s3Writer) Pause() error {
	if w.done {
		return nil
	}
	w.done = true
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), S3PauseTimeout)
	defer cancel()
	w.ctx = ctx
	if err := w.finish(); err != nil {
		w.abandon()
		return err
	}
	return nil
}

func (w *s3Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.abandon()
	return nil
}

// abandon aborts the upload, if one was begun, even when the writer's
// context is canceled.
func (w *s3Writer) abandon() {
	if w.id != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), S3PauseTimeout)
		defer cancel()
		_ = w.b.abort(ctx, w.key, w.id)
	}
	w.buf.Reset()
}

// complete completes an upload from its parts.
func (b *S3Bucket) complete(ctx context.Context, key, id string, parts []types.CompletedPart) error {
	_, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &b.name, Key: aws.String(b.objectKey(key)),
		UploadId: &id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return fmt.Errorf("blobstore: completing the upload of %s: %w", key, err)
	}
	return nil
}
