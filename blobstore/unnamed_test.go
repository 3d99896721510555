package blobstore

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// An unnamed blob is invisible until CommitAs names it; CommitAs over an
// existing key replaces it; Abort leaves nothing.
func TestUnnamedBlobs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := NewDir(root)
	w, err := d.CreateUnnamed(ctx, "bodies/sha256")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("body"))
	if _, err := d.Open(ctx, "bodies/sha256/abc"); err == nil {
		t.Fatal("visible before CommitAs")
	}
	if err := w.CommitAs("bodies/sha256/abc"); err != nil {
		t.Fatal(err)
	}
	_ = w.Abort() // after CommitAs: nothing
	again, _ := d.CreateUnnamed(ctx, "bodies/sha256")
	_, _ = again.Write([]byte("body"))
	if err := again.CommitAs("bodies/sha256/abc"); err != nil {
		t.Fatal(err)
	}
	r, err := d.Open(ctx, "bodies/sha256/abc")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "body" {
		t.Errorf("read %q", b)
	}
	aborted, _ := d.CreateUnnamed(ctx, "bodies/sha256")
	_, _ = aborted.Write([]byte("half"))
	if err := aborted.Abort(); err != nil {
		t.Fatal(err)
	}
	bad, _ := d.CreateUnnamed(ctx, "bodies/sha256")
	if err := bad.CommitAs("../outside"); err == nil {
		t.Error("CommitAs accepted a key outside the store")
	}
	entries, _ := os.ReadDir(filepath.Join(root, "bodies", "sha256"))
	if len(entries) != 1 || entries[0].Name() != "abc" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left in bodies/sha256: %v, want only abc", names)
	}
}
