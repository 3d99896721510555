package blobstore_test

import (
	"context"
	"slices"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
)

// TestList: both backends list the committed blobs directly under a
// prefix, not a blob being written nor those under a sub-prefix, and
// nothing for a prefix that holds nothing.
func TestList(t *testing.T) {
	ctx := context.Background()
	for _, loc := range []string{t.TempDir(), "mem://"} {
		t.Run(loc[:4], func(t *testing.T) {
			s, err := blobstore.Open(ctx, loc)
			if err != nil {
				t.Fatal(err)
			}
			checkList(t, s)
		})
	}
}

func checkList(t *testing.T, s blobstore.Store) {
	ctx := context.Background()
	l, ok := s.(blobstore.Lister)
	if !ok {
		t.Fatalf("%T cannot list", s)
	}
	for _, key := range []string{"p/a", "p/b", "p/sub/c", "q/d"} {
		w, err := s.Create(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(key)); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	open, err := s.Create(ctx, "p/e") // not committed
	if err != nil {
		t.Fatal(err)
	}
	defer open.Abort()
	got, err := l.List(ctx, "p/", 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, b := range got {
		keys = append(keys, b.Key)
		if b.Size != 3 || b.ModTime.IsZero() {
			t.Errorf("%s: size %d, modified %s", b.Key, b.Size, b.ModTime)
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"p/a", "p/b"}) {
		t.Errorf("listed %q, want p/a and p/b", keys)
	}
	if got, err := l.List(ctx, "p", 1); err != nil || len(got) != 1 {
		t.Errorf("at most 1: %v, %v", got, err)
	}
	if got, err := l.List(ctx, "none", 10); err != nil || len(got) != 0 {
		t.Errorf("an empty prefix: %v, %v", got, err)
	}
}
