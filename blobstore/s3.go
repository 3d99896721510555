package blobstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// S3Bucket is a Bucket on S3 (or an S3-compatible server) that can also
// keep a cut-off download for the next attempt, as a Dir does (Resumer):
// a resumable blob is a multipart upload to its own key, one part per
// S3PartSize bytes, so what a killed worker had uploaded outlives it.
type S3Bucket struct {
	*Bucket
	client *s3.Client
	name   string // the bucket's
	prefix string // gocloud's prefix= option: every key starts with it
}

var _ Resumer = (*S3Bucket)(nil)

// S3PartSize is the size of every part of a resumable blob but its last:
// S3's smallest, so a worker holds at most this much of a body that is
// not yet on the server. A cut-off download keeps what its parts hold
// (and, when the attempt ends rather than the process, the rest too).
var S3PartSize int64 = 5 << 20

// openS3 wraps an s3:// bucket; a bucket of another kind, or one whose
// client gocloud does not expose, stays a plain Bucket (no resume).
func openS3(b *blob.Bucket, location string) Store {
	plain := &Bucket{B: b}
	var client *s3.Client
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "s3" || !b.As(&client) || client == nil {
		return plain
	}
	return &S3Bucket{Bucket: plain, client: client, name: u.Host, prefix: u.Query().Get("prefix")}
}

func (b *S3Bucket) objectKey(key string) string { return b.prefix + key }

// abortUploads aborts the unfinished multipart uploads whose key starts
// with prefix (exact: whose key is prefix).
func (b *S3Bucket) abortUploads(ctx context.Context, prefix string, exact bool) error {
	ups, err := b.uploads(ctx, prefix)
	if err != nil {
		return err
	}
	for _, u := range ups {
		if exact && u.key != prefix {
			continue
		}
		if err := b.abort(ctx, u.key, u.id); err != nil {
			return err
		}
	}
	return nil
}

type upload struct{ key, id string } // key: without b.prefix

// uploads lists the unfinished multipart uploads under prefix.
func (b *S3Bucket) uploads(ctx context.Context, prefix string) ([]upload, error) {
	var out []upload
	in := &s3.ListMultipartUploadsInput{Bucket: &b.name, Prefix: aws.String(b.objectKey(prefix))}
	for {
		page, err := b.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("blobstore: listing the unfinished uploads under %s: %w", prefix, err)
		}
		for _, u := range page.Uploads {
			out = append(out, upload{key: strings.TrimPrefix(aws.ToString(u.Key), b.prefix), id: aws.ToString(u.UploadId)})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

func (b *S3Bucket) abort(ctx context.Context, key, id string) error {
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.name, Key: aws.String(b.objectKey(key)), UploadId: &id})
	if err != nil && !isNoSuchUpload(err) {
		return fmt.Errorf("blobstore: aborting the upload of %s: %w", key, err)
	}
	return nil
}

func isNoSuchUpload(err error) bool {
	var nsu interface{ ErrorCode() string }
	return errors.As(err, &nsu) && (nsu.ErrorCode() == "NoSuchUpload" || nsu.ErrorCode() == "NotFound")
}

// Discard implements Resumer: what a paused (or killed) writer of key
// kept, uploaded parts and all.
func (b *S3Bucket) Discard(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := b.abortUploads(ctx, key, true); err != nil {
		return err
	}
	return b.Remove(ctx, key)
}
