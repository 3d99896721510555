package blobstore

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/gcerrors"
)

// ResumeFrom implements Resumer. What from's writer kept is an object
// under from (it paused) or an unfinished upload (its process was killed):
// that upload is completed from the parts it holds, which S3 allows to be
// read only then. The first offset bytes are copied into key's own new
// upload through tee, and from's object is removed: the two attempts never
// share an object, and a writer of from that wakes up later finds its
// upload gone.
func (b *S3Bucket) ResumeFrom(ctx context.Context, key, from string, offset int64, tee io.Writer) (PausableWriter, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := checkKey(from); err != nil {
		return nil, err
	}
	if err := b.finishKilled(ctx, from); err != nil {
		return nil, fmt.Errorf("blobstore: resuming %s from %s: %w", key, from, err)
	}
	defer func() { // released: the new attempt holds its own copy
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), S3PauseTimeout)
		defer cancel()
		_ = b.Discard(dctx, from)
	}()
	r, err := b.B.NewRangeReader(ctx, from, 0, offset, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("blobstore: resuming %s from %s: nothing was kept: %w", key, from, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blobstore: resuming %s from %s: %w", key, from, err)
	}
	defer r.Close()
	w := &s3Writer{b: b, ctx: ctx, key: key}
	var dst io.Writer = w
	if tee != nil {
		dst = io.MultiWriter(w, tee)
	}
	n, err := io.Copy(dst, r)
	if err == nil && n < offset {
		err = fmt.Errorf("only %d of %d bytes were kept", n, offset)
	}
	if err != nil {
		_ = w.Abort()
		return nil, fmt.Errorf("blobstore: resuming %s from %s: %w", key, from, err)
	}
	return w, nil
}

// finishKilled completes the unfinished upload of key that a killed
// writer left, if there is one, from the parts it uploaded: every one of
// them full but, perhaps, the last.
func (b *S3Bucket) finishKilled(ctx context.Context, key string) error {
	ups, err := b.uploads(ctx, key)
	if err != nil {
		return err
	}
	finished := false
	for _, u := range ups {
		if u.key != key {
			continue
		}
		if finished { // one writer per key; another is left over
			_ = b.abort(ctx, u.key, u.id)
			continue
		}
		parts, err := b.listParts(ctx, key, u.id)
		if err != nil {
			return err
		}
		if len(parts) == 0 {
			_ = b.abort(ctx, u.key, u.id)
			continue
		}
		if err := b.complete(ctx, key, u.id, parts); err != nil && !isNoSuchUpload(err) {
			return err
		}
		finished = true
	}
	return nil
}

func (b *S3Bucket) listParts(ctx context.Context, key, id string) ([]types.CompletedPart, error) {
	var parts []types.CompletedPart
	in := &s3.ListPartsInput{Bucket: &b.name, Key: aws.String(b.objectKey(key)), UploadId: &id}
	for {
		page, err := b.client.ListParts(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("listing the parts of %s: %w", key, err)
		}
		for _, p := range page.Parts {
			parts = append(parts, types.CompletedPart{ETag: p.ETag, PartNumber: p.PartNumber})
		}
		if !aws.ToBool(page.IsTruncated) {
			return parts, nil
		}
		in.PartNumberMarker = page.NextPartNumberMarker
	}
}
