package blobstore

import (
	"context"
	"strings"
	"testing"
)

func TestRedactedLeavesOutUsersAndPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"/srv/a@b/blobs":                            "/srv/a@b/blobs",
		"s3://bucket?region=x":                      "s3://bucket?region=x",
		"s3://key:hunter2@bucket?region=x":          "s3://bucket?region=x",
		"s3://key@bucket":                           "s3://bucket",
		"s3://key:hun/ter2@bucket":                  "s3://…@bucket",   // does not parse: a / in the password
		"s3://key:hun#ter2@bucket":                  "s3://…@bucket",   // nor with a #
		"s3://key:hun%zzter2@bucket/p":              "s3://…@bucket/p", // nor with a bad escape
		"s3://bucket?endpoint=http://k:hunter2@h:9": "s3://bucket?endpoint=http%3A%2F%2Fh%3A9",
		"s3://bucket?endpoint=http://h:9&region=x":  "s3://bucket?endpoint=http://h:9&region=x",
		"gs://bucket?access_id=a@b.iam":             "gs://bucket?access_id=a@b.iam", // no URL in it
	} {
		if got := Redacted(in); got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
	}
}

// gocloud's error names the URL: the error Open returns names it
// without its password.
func TestAnObjectStoreThatDoesNotOpenIsNamedWithoutItsPassword(t *testing.T) {
	for _, loc := range []string{"s3://key:hunter2@bucket?bogus=1", "nope://key:hunter2@bucket"} {
		_, err := Open(context.Background(), loc)
		if err == nil {
			t.Fatalf("Open(%q) opened", loc)
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "key:") || !strings.Contains(err.Error(), "bucket") {
			t.Errorf("Open(%q): %v", loc, err)
		}
	}
}
