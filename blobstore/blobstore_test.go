package blobstore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
			checkStore(t, s)
		})
	}
}

func checkStore(t *testing.T, s blobstore.Store) {
	ctx := context.Background()
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
}

// A resumed writer starts from a copy of what an earlier, paused writer
// kept: a key of its own, the earlier kept bytes released, and the earlier
// writer (still open, as a frozen process's would be) unable to touch it.
func TestResumeFromCopiesIntoANewKey(t *testing.T) {
	ctx := context.Background()
	d, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old, err := d.CreateResumable(ctx, "b/x.1")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(old, "0123456789")
	var tee strings.Builder
	resumed, err := d.ResumeFrom(ctx, "b/x.2", "b/x.1", 6, &tee)
	if err != nil {
		t.Fatal(err)
	}
	if tee.String() != "012345" {
		t.Errorf("copied %q, want the first 6 bytes", tee.String())
	}
	fmt.Fprint(old, "STALE") // the old writer goes on: its file is its own
	_ = old.Commit()
	fmt.Fprint(resumed, "678")
	if err := resumed.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := d.Open(ctx, "b/x.2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "012345678" {
		t.Errorf("resumed blob %q, want 012345678", b)
	}
	if _, err := d.ResumeFrom(ctx, "b/x.3", "b/x.1", 6, nil); err == nil {
		t.Errorf("resumed from kept bytes already released")
	}
	// Fewer bytes kept than asked for: refused, and nothing left.
	short, _ := d.CreateResumable(ctx, "b/y.1")
	fmt.Fprint(short, "abc")
	_ = short.Pause()
	if _, err := d.ResumeFrom(ctx, "b/y.2", "b/y.1", 10, nil); err == nil {
		t.Errorf("resumed 10 bytes from 3 kept")
	}
	// A key is never written twice.
	again, _ := d.CreateResumable(ctx, "b/z.1")
	_ = again.Pause()
	if _, err := d.CreateResumable(ctx, "b/z.1"); err == nil {
		t.Errorf("two writers for one key")
	}
	if err := d.Discard(ctx, "b/z.1"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeletePrefix(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(d.Root); len(entries) != 0 {
		t.Errorf("%d entries left in the root", len(entries))
	}
}

// Every process that opens a store sees the same identity, however many
// ask at once; another store has another.
func TestStoreIdentity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mem, err := blobstore.Open(ctx, "mem://") // one bucket per Open
	if err != nil {
		t.Fatal(err)
	}
	for _, loc := range []string{dir, "mem://"} {
		t.Run(loc[:4], func(t *testing.T) {
			ids := make(chan string, 8)
			for range 8 {
				go func() {
					s := mem
					if loc == dir {
						d, err := blobstore.NewDir(dir) // as another process would
						if err != nil {
							t.Error(err)
						}
						s = d
					}
					id, err := blobstore.ID(ctx, s)
					if err != nil {
						t.Error(err)
					}
					ids <- id
				}()
			}
			first := <-ids
			for range 7 {
				if id := <-ids; id != first || id == "" {
					t.Errorf("identities %q and %q for one store", first, id)
				}
			}
		})
	}
	other, _ := blobstore.NewDir(t.TempDir())
	a, _ := blobstore.NewDir(dir)
	idA, _ := blobstore.ID(ctx, a)
	idB, _ := blobstore.ID(ctx, other)
	if idA == idB {
		t.Errorf("two stores share the identity %q", idA)
	}
}
