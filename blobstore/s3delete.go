package blobstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3DeleteBatch is how many keys one DeleteObjects request removes: S3's
// most.
var s3DeleteBatch = 1000

// DeletePrefix implements Store: the objects under prefix, listed a page
// at a time and removed with one request per page (not two per object,
// as a gocloud bucket does), the object named prefix (an uploaded URL
// list), and the multipart uploads under prefix that a killed worker left
// unfinished.
func (b *S3Bucket) DeletePrefix(ctx context.Context, prefix string) error {
	if err := checkKey(prefix); err != nil {
		return err
	}
	dir := strings.TrimSuffix(prefix, "/") + "/"
	pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.name, Prefix: aws.String(b.objectKey(dir))})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blobstore: listing %s: %w", prefix, err)
		}
		keys := make([]string, 0, len(page.Contents))
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		if err := b.deleteObjects(ctx, keys); err != nil {
			return err
		}
	}
	if err := b.deleteObject(ctx, b.objectKey(prefix)); err != nil {
		return err
	}
	return b.abortUploads(ctx, dir, false)
}

// Remove deletes the one object under key, never a prefix, with one
// request. An object that is not there is no error.
func (b *S3Bucket) Remove(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return b.deleteObject(ctx, b.objectKey(key))
}

// deleteObjects removes objects by their full keys, s3DeleteBatch a
// request. A server that refuses DeleteObjects (some S3-compatible ones
// want a Content-MD5 header) gets one DeleteObject a key instead.
func (b *S3Bucket) deleteObjects(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), s3DeleteBatch)]
		keys = keys[len(batch):]
		objs := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			objs[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &b.name, Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("blobstore: deleting %d objects: %w", len(batch), err)
			}
			for _, k := range batch {
				if err := b.deleteObject(ctx, k); err != nil {
					return err
				}
			}
			continue
		}
		for _, e := range out.Errors {
			if code := aws.ToString(e.Code); code != "NoSuchKey" && code != "NotFound" {
				return fmt.Errorf("blobstore: deleting %s: %s: %s", aws.ToString(e.Key), code, aws.ToString(e.Message))
			}
		}
	}
	return nil
}

// deleteObject removes one object by its full key; one that is not there
// is no error.
func (b *S3Bucket) deleteObject(ctx context.Context, key string) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.name, Key: &key})
	var coded interface{ ErrorCode() string }
	if err != nil && !(errors.As(err, &coded) && (coded.ErrorCode() == "NoSuchKey" || coded.ErrorCode() == "NotFound")) {
		return fmt.Errorf("blobstore: deleting %s: %w", strings.TrimPrefix(key, b.prefix), err)
	}
	return nil
}
