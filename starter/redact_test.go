package main

import (
	"strings"
	"testing"
)

// The starter names its object store, in its errors and in the worker
// command it suggests, without the password its --blob-url holds.
func TestTheStartersStoreIsNamedWithoutItsPassword(t *testing.T) {
	o := options{blobURL: "s3://key:hunter2@bucket?region=x", blobDir: "/unused"}
	if got := o.storeLocation(); got != "s3://bucket?region=x" {
		t.Errorf("storeLocation() = %q", got)
	}
	err := storeMismatch(&o, "aa", workerStore{"bb", "s3://other"})
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "s3://bucket?region=x") {
		t.Errorf("the mismatch: %v", err)
	}
}

// The workers' store is said as a command to copy: a directory with a
// space is quoted, and what a terminal acts on (another program's poller
// identity may say anything) is escaped.
func TestTheWorkersStoreIsSaidAsACommandToCopy(t *testing.T) {
	o := options{blobDir: "/mine", taskQueue: "q"}
	for loc, want := range map[string]string{
		"/srv/a dir/blobs":          "--blob-dir '/srv/a dir/blobs' (or BATCHFETCH_BLOB_DIR='/srv/a dir/blobs')",
		"/srv/it's":                 `--blob-dir '/srv/it'\''s'`,
		"\x1b[2J/x":                 `--blob-dir '\x1b[2J/x'`,
		"s3://b?region=x&profile=p": "--blob-url 's3://b?region=x&profile=p'",
	} {
		err := storeMismatch(&o, "aa", workerStore{"bb", loc}).Error()
		if !strings.Contains(err, want) || strings.Contains(err, "\x1b") {
			t.Errorf("location %q: %s\nwant it to say %s", loc, err, want)
		}
	}
}
