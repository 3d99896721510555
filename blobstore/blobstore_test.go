package blobstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
)

// TestStores runs the same checks on each backend: a directory (file) and
// an in-memory gocloud bucket (mem://, standing for S3, GCS and Azure).
func TestStores(t *testing.T) {
	ctx := context.Background()
	for _, loc := range []string{t.TempDir(), "file://" + t.TempDir(), "mem://"} {
		t.Run(loc[:4], func(t *testing.T) {
			s, err := blobstore.Open(ctx, loc)
			if err != nil {
				t.Fatal(err)
			}
			put := func(key, body string) {
				w, err := s.Create(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprint(w, body)
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			get := func(key string) (string, error) {
				r, err := s.Open(ctx, key)
				if err != nil {
					return "", err
				}
				defer r.Close()
				b, err := io.ReadAll(r)
				return string(b), err
			}
			put("batches/run/bodies/00/000000000", "zero")
			put("batches/run/bodies/01/000000001", "one")
			put("batches/other/x", "keep me")
			put("inputs/list.txt", "http://a.example/\n")
			if got, err := get("batches/run/bodies/01/000000001"); err != nil || got != "one" {
				t.Errorf("read %q, %v", got, err)
			}
			w, _ := s.Create(ctx, "batches/run/aborted")
			fmt.Fprint(w, "half")
			if err := w.Abort(); err != nil {
				t.Fatal(err)
			}
			if _, err := get("batches/run/aborted"); !errors.Is(err, blobstore.ErrNotFound) {
				t.Errorf("an aborted blob is readable: %v", err)
			}
			if _, err := get("batches/run/missing"); !errors.Is(err, blobstore.ErrNotFound) {
				t.Errorf("missing blob: %v, want ErrNotFound", err)
			}
			if err := s.DeletePrefix(ctx, "batches/run"); err != nil {
				t.Fatal(err)
			}
			if err := s.DeletePrefix(ctx, "inputs/list.txt"); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"batches/run/bodies/00/000000000", "inputs/list.txt"} {
				if _, err := get(k); !errors.Is(err, blobstore.ErrNotFound) {
					t.Errorf("%s survived DeletePrefix: %v", k, err)
				}
			}
			if got, err := get("batches/other/x"); err != nil || got != "keep me" {
				t.Errorf("DeletePrefix removed another batch's blob: %q, %v", got, err)
			}
			for _, bad := range []string{"", "/abs", "../up", "a/../../b"} {
				if _, err := s.Create(ctx, bad); err == nil {
					t.Errorf("Create(%q) accepted a bad key", bad)
				}
			}
		})
	}
}
