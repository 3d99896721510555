package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// buckets, whose copies are new files
)

const keptKey = "bodies/sha256/abc"

// aged commits a kept body under keptKey, last written 40 days ago.
func aged(t *testing.T) (*Dir, string) {
	t.Helper()
	root := t.TempDir()
	d, _ := NewDir(root)
	keep(t, d)
	p := filepath.Join(root, filepath.FromSlash(keptKey))
	past := time.Now().Add(-40 * 24 * time.Hour)
	if err := os.Chtimes(p, past, past); err != nil {
		t.Fatal(err)
	}
	return d, p
}

// keep commits the kept body "body" under keptKey, as the hash step does.
func keep(t *testing.T, d *Dir) {
	t.Helper()
	w, err := d.CreateUnnamed(context.Background(), "bodies/sha256")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "body")
	if err := w.CommitAs(keptKey); err != nil {
		t.Fatal(err)
	}
}

// left is what bodies/sha256 holds.
func left(t *testing.T, d *Dir) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(d.Root, "bodies", "sha256"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Touch makes a kept body's last use now; a body that is not there is
// ErrNotFound.
func TestTouchMarksAUse(t *testing.T) {
	ctx := context.Background()
	d, p := aged(t)
	before := time.Now().Add(-time.Minute)
	if err := d.Touch(ctx, keptKey); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(p); err != nil || info.ModTime().Before(before) {
		t.Errorf("after Touch: %v, %v; want a time from now", info.ModTime(), err)
	}
	if err := d.Touch(ctx, "bodies/sha256/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Touch of no blob: %v, want ErrNotFound", err)
	}
	if err := Touch(ctx, d, keptKey); err != nil {
		t.Errorf("blobstore.Touch: %v", err)
	}
}

// On a bucket, Touch renews an object last written more than a day ago
// (its lifecycle rule counts from then), by server-side copies that
// leave nothing behind, and leaves a recent one alone. A file:// bucket
// stands for S3, GCS and Azure here: like theirs, its copy is a new
// object with a new time (an in-memory bucket's copy keeps the old).
func TestBucketTouchRenewsAnOldObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bb, err := blob.OpenBucket(ctx, "file://"+filepath.ToSlash(dir)+"?metadata=skip")
	if err != nil {
		t.Fatal(err)
	}
	b := &Bucket{B: bb}
	defer b.Close()
	if err := bb.WriteAll(ctx, keptKey, []byte("body"), nil); err != nil {
		t.Fatal(err)
	}
	modTime := func() time.Time {
		a, err := bb.Attributes(ctx, keptKey)
		if err != nil {
			t.Fatal(err)
		}
		return a.ModTime
	}
	recent := modTime()
	if err := b.Touch(ctx, keptKey); err != nil {
		t.Fatal(err)
	}
	if got := modTime(); !got.Equal(recent) {
		t.Errorf("a recent object was rewritten: %v, was %v", got, recent)
	}
	past := time.Now().Add(-40 * 24 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, filepath.FromSlash(keptKey)), past, past); err != nil {
		t.Fatal(err)
	}
	if err := b.Touch(ctx, keptKey); err != nil {
		t.Fatal(err)
	}
	if got := modTime(); time.Since(got) > time.Minute {
		t.Errorf("an object written 40 days ago still dates from %v after Touch", got)
	}
	if body, err := bb.ReadAll(ctx, keptKey); err != nil || string(body) != "body" {
		t.Errorf("after Touch the object holds %q, %v", body, err)
	}
	it := bb.List(&blob.ListOptions{Prefix: "bodies/sha256/"})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if o.Key != keptKey {
			t.Errorf("Touch left %s", o.Key)
		}
	}
	if err := b.Touch(ctx, "bodies/sha256/none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Touch of no object: %v, want ErrNotFound", err)
	}
}

// RemoveUnused never undoes a use that races with it. Each case puts a
// Touch or a commit of the same body (another batch keeping it again)
// at one point of its work: after it has found the body old, before it
// hides it (where a gc that stats and then removes loses the body), and
// while it is hidden.
func TestRemoveUnusedNeverUndoesAUse(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(func() { beforeHide, betweenHideAndCheck = nil, nil })
	cases := []struct {
		name        string
		at          *func(string)
		use         func(t *testing.T, d *Dir)
		wantRemoved bool // the old file goes
		wantKept    bool // a body is under keptKey after
	}{
		{"touched before it is hidden", &beforeHide, func(t *testing.T, d *Dir) {
			if err := d.Touch(ctx, keptKey); err != nil {
				t.Errorf("Touch: %v", err)
			}
		}, false, true},
		{"kept again before it is hidden", &beforeHide, keep, false, true},
		{"kept again while hidden", &betweenHideAndCheck, keep, true, true},
		{"touched while hidden", &betweenHideAndCheck, func(t *testing.T, d *Dir) {
			// The toucher is told there is none, and does without it
			// (asks for the body whole): it never counts on the body.
			if err := d.Touch(ctx, keptKey); !errors.Is(err, ErrNotFound) {
				t.Errorf("Touch of a hidden body: %v, want ErrNotFound", err)
			}
		}, true, false},
		{"put back by another gc while hidden", &betweenHideAndCheck, func(t *testing.T, d *Dir) {
			for _, name := range left(t, d) {
				if strings.HasPrefix(name, HiddenPrefix) {
					if err := d.Unhide("bodies/sha256/" + name); err != nil {
						t.Error(err)
					}
				}
			}
		}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, p := aged(t)
			*c.at = func(string) { c.use(t, d) }
			defer func() { *c.at = nil }()
			removed, size, err := d.RemoveUnused(keptKey, time.Now().Add(-30*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if removed != c.wantRemoved || (removed && size != 4) {
				t.Errorf("removed %v (%d bytes), want %v", removed, size, c.wantRemoved)
			}
			b, err := os.ReadFile(p)
			if c.wantKept && (err != nil || string(b) != "body") {
				t.Errorf("the body was used, and is gone: %q, %v", b, err)
			}
			if !c.wantKept && err == nil {
				t.Errorf("the body is still there")
			}
			if names := left(t, d); (c.wantKept && len(names) != 1) || (!c.wantKept && len(names) != 0) {
				t.Errorf("left in bodies/sha256: %v", names)
			}
		})
	}

	t.Run("unused", func(t *testing.T) {
		d, _ := aged(t)
		if removed, _, err := d.RemoveUnused(keptKey, time.Now().Add(-30*24*time.Hour)); err != nil || !removed {
			t.Errorf("an unused body: removed %v, %v", removed, err)
		}
		if names := left(t, d); len(names) != 0 {
			t.Errorf("left: %v", names)
		}
		keep(t, d)
		if removed, _, err := d.RemoveUnused(keptKey, time.Now().Add(-30*24*time.Hour)); err != nil || removed {
			t.Errorf("a body kept just now: removed %v, %v", removed, err)
		}
	})
}

// A body a gc stopped half-way left hidden is put back by Unhide, or
// dropped when the body was kept again meanwhile.
func TestUnhidePutsBackWhatAStoppedGCHid(t *testing.T) {
	d, p := aged(t)
	hidden := filepath.Join(filepath.Dir(p), HiddenPrefix+"abc.0123456789abcdef")
	if err := os.Rename(p, hidden); err != nil {
		t.Fatal(err)
	}
	if err := d.Unhide("bodies/sha256/" + filepath.Base(hidden)); err != nil {
		t.Fatal(err)
	}
	if names := left(t, d); len(names) != 1 || names[0] != "abc" {
		t.Errorf("after Unhide: %v, want abc", names)
	}
	if err := os.Link(p, hidden); err != nil {
		t.Fatal(err)
	}
	keep(t, d) // kept again: the hidden copy is the older
	if err := d.Unhide("bodies/sha256/" + filepath.Base(hidden)); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(p); err != nil || time.Since(info.ModTime()) > time.Minute {
		t.Errorf("Unhide put an older copy over a newer one: %v", err)
	}
	if names := left(t, d); len(names) != 1 {
		t.Errorf("after Unhide: %v, want abc", names)
	}
	if err := d.Unhide("bodies/sha256/abc"); err == nil {
		t.Error("Unhide of a name that is not hidden")
	}
}
