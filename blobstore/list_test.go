package blobstore

import (
	"context"
	"reflect"
	"testing"
)

func TestListDirectlyUnderPrefix(t *testing.T) {
	ctx := context.Background()
	dir, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.(*Bucket).Close()
	for name, s := range map[string]Store{"dir": dir, "bucket": bucket} {
		t.Run(name, func(t *testing.T) {
			l := s.(Lister)
			if keys, err := l.List(ctx, "p/q"); err != nil || len(keys) != 0 {
				t.Fatalf("empty prefix: %v, %v", keys, err)
			}
			for _, k := range []string{"p/q/b", "p/q/a", "p/q/sub/c", "p/qq"} {
				w, err := s.Create(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write([]byte("x")); err != nil {
					t.Fatal(err)
				}
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			pending, err := s.Create(ctx, "p/q/pending") // not committed: not listed
			if err != nil {
				t.Fatal(err)
			}
			defer pending.Abort()
			for _, prefix := range []string{"p/q", "p/q/"} {
				keys, err := l.List(ctx, prefix)
				if err != nil {
					t.Fatal(err)
				}
				if want := []string{"p/q/a", "p/q/b"}; !reflect.DeepEqual(keys, want) {
					t.Fatalf("List(%q) = %v, want %v", prefix, keys, want)
				}
			}
			if _, err := l.List(ctx, "../x"); err == nil {
				t.Fatal("a key outside the store was listed")
			}
		})
	}
}
