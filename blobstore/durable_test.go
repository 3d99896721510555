package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// syncs records what fsync is asked to sync, and whether name (a file's
// final name) existed at that moment.
type syncs struct {
	root  string
	final string
	log   []string
}

func (s *syncs) install(t *testing.T) {
	t.Helper()
	real := fsync
	fsync = func(f *os.File) error {
		rel, _ := filepath.Rel(s.root, f.Name())
		where := "final absent"
		if _, err := os.Stat(s.final); err == nil {
			where = "final present"
		}
		s.log = append(s.log, filepath.ToSlash(rel)+": "+where)
		return real(f)
	}
	t.Cleanup(func() { fsync = real })
}

// Every rename into place syncs the file before it is renamed (its final
// name does not exist yet) and its directory after (the final name does):
// a host crash leaves the old blob or all of the new one, and a commit
// that returned stays. A pack syncs its directory once, with its first
// Sync; the store identity is synced before it is linked into place.
func TestRenamesIntoPlaceAreSynced(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := NewDir(root)
	s := &syncs{root: root}
	s.install(t)
	check := func(what string, want ...string) {
		t.Helper()
		if len(s.log) != len(want) {
			t.Errorf("%s: synced %q, want %d syncs matching %q", what, s.log, len(want), want)
		} else {
			for i := range want {
				name, state, _ := strings.Cut(want[i], "|")
				if !strings.HasPrefix(s.log[i], name) || !strings.HasSuffix(s.log[i], state) {
					t.Errorf("%s: sync %d is %q, want %s...: %s", what, i, s.log[i], name, state)
				}
			}
		}
		s.log = nil
	}

	s.final = filepath.Join(root, "results", "run", "000001")
	w, err := d.Create(ctx, "results/run/000001")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "body")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	check("Commit", "results/run/.000001.tmp-|final absent", "results/run:|final present")

	s.final = filepath.Join(root, "results", "run", "000002")
	pw, _ := d.CreateResumable(ctx, "results/run/000002")
	fmt.Fprint(pw, "body")
	if err := pw.Commit(); err != nil {
		t.Fatal(err)
	}
	check("a resumable blob's Commit", "results/run/.000002.partial:|final absent", "results/run:|final present")

	// A batch's scratch (checked before use, fetched again if lost) is
	// not synced.
	s.final = filepath.Join(root, "batches", "run", "000003")
	sw, _ := d.Create(ctx, "batches/run/000003")
	fmt.Fprint(sw, "body")
	if err := sw.Commit(); err != nil {
		t.Fatal(err)
	}
	check("a scratch blob's Commit")

	s.final = filepath.Join(root, "bodies", "sha256", "abc")
	u, _ := d.CreateUnnamed(ctx, "bodies/sha256")
	fmt.Fprint(u, "body")
	if err := u.CommitAs("bodies/sha256/abc"); err != nil {
		t.Fatal(err)
	}
	check("CommitAs", "bodies/sha256/"+UnnamedPrefix+"|final absent", "bodies/sha256:|final present")

	s.final = filepath.Join(root, "out.jsonl")
	f, _ := os.CreateTemp(root, ".out.jsonl.*")
	fmt.Fprintln(f, `{"url":"http://127.0.0.1/"}`)
	if err := CommitFile(f, s.final); err != nil {
		t.Fatal(err)
	}
	check("CommitFile", ".out.jsonl.|final absent", ".:|final present")

	s.final = filepath.Join(root, "nothing")
	p, _ := d.CreatePack(ctx, "batches/run/pack")
	_, _ = p.Append([]byte("small"))
	_, _ = p.Sync()
	_, _ = p.Append([]byte("more"))
	_, _ = p.Sync()
	p.Close()
	check("a pack's two Syncs", "batches/run/pack:|", "batches/run:|", "batches/run/pack:|")

	s.final = filepath.Join(root, IDKey)
	if _, err := d.ID(ctx); err != nil {
		t.Fatal(err)
	}
	check("the store identity", IDKey+".tmp-|final absent", ".:|final present")

	for _, c := range []struct{ name, content string }{{"results/run/000001", "body"}, {"batches/run/000003", "body"}, {"bodies/sha256/abc", "body"}} {
		if b, err := os.ReadFile(filepath.Join(root, c.name)); err != nil || string(b) != c.content {
			t.Errorf("%s holds %q, %v", c.name, b, err)
		}
	}
}

// A sync that fails fails the commit, which leaves nothing under the key
// (nor a hidden file).
func TestAFailedSyncCommitsNothing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	d, _ := NewDir(root)
	real := fsync
	fsync = func(*os.File) error { return errors.New("disk on fire") }
	t.Cleanup(func() { fsync = real })
	w, _ := d.Create(ctx, "results/run/000001")
	fmt.Fprint(w, "body")
	if err := w.Commit(); err == nil || !strings.Contains(err.Error(), "disk on fire") || !strings.Contains(err.Error(), "syncing") {
		t.Errorf("Commit: %v, want the sync's error", err)
	}
	if _, err := d.Open(ctx, "results/run/000001"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a blob whose sync failed is there: %v", err)
	}
	if left, _ := os.ReadDir(filepath.Join(root, "batches", "run")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// A writer between making its directory and creating its file in it,
// while another writer's DeletePrefix removes that directory (its last
// entry gone), still creates its blob: every way of starting a blob, and
// an unnamed blob's CommitAs into a directory of its own.
func TestWritersSurviveACleanupRemovingTheirDirectory(t *testing.T) {
	ctx := context.Background()
	type start func(d *Dir) (commit func() error, err error)
	write := func(w io.Writer, commit func() error) func() error {
		fmt.Fprint(w, "mine")
		return commit
	}
	cases := []struct {
		name, key string
		start     start
	}{
		{"Create", "inputs/mine.txt", func(d *Dir) (func() error, error) {
			w, err := d.Create(ctx, "inputs/mine.txt")
			if err != nil {
				return nil, err
			}
			return write(w, w.Commit), nil
		}},
		{"CreateResumable", "inputs/mine.txt", func(d *Dir) (func() error, error) {
			w, err := d.CreateResumable(ctx, "inputs/mine.txt")
			if err != nil {
				return nil, err
			}
			return write(w, w.Commit), nil
		}},
		{"ResumeFrom", "inputs/mine.txt", func(d *Dir) (func() error, error) {
			old, err := d.CreateResumable(ctx, "elsewhere/old")
			if err != nil {
				return nil, err
			}
			fmt.Fprint(old, "mi")
			_ = old.Pause()
			w, err := d.ResumeFrom(ctx, "inputs/mine.txt", "elsewhere/old", 2, nil)
			if err != nil {
				return nil, err
			}
			fmt.Fprint(w, "ne")
			return w.Commit, nil
		}},
		{"CreateUnnamed", "inputs/mine.txt", func(d *Dir) (func() error, error) {
			w, err := d.CreateUnnamed(ctx, "inputs")
			if err != nil {
				return nil, err
			}
			return write(w, func() error { return w.CommitAs("inputs/mine.txt") }), nil
		}},
		{"CommitAs", "inputs/mine.txt", func(d *Dir) (func() error, error) {
			w, err := d.CreateUnnamed(ctx, "elsewhere")
			if err != nil {
				return nil, err
			}
			return write(w, func() error { return w.CommitAs("inputs/mine.txt") }), nil
		}},
		{"CreatePack", "inputs/mine.txt", func(d *Dir) (func() error, error) {
			p, err := d.CreatePack(ctx, "inputs/mine.txt")
			if err != nil {
				return nil, err
			}
			_, _ = p.Append([]byte("mine"))
			return p.Close, nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			d, _ := NewDir(root)
			other, _ := d.Create(ctx, "inputs/other.txt")
			_ = other.Commit()
			inputs := filepath.Join(root, "inputs")
			removed := false
			betweenMkdirAndUse = func(dir string) {
				if dir == inputs && !removed {
					removed = true
					if err := d.DeletePrefix(ctx, "inputs/other.txt"); err != nil {
						t.Error(err)
					}
					if _, err := os.Stat(inputs); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("the cleanup left %s: %v", inputs, err)
					}
				}
			}
			defer func() { betweenMkdirAndUse = nil }()
			commit, err := c.start(d)
			if err == nil {
				err = commit()
			}
			if err != nil {
				t.Fatalf("a cleanup beside it failed the writer: %v", err)
			}
			if !removed {
				t.Fatal("the writer never made inputs/")
			}
			if b, err := os.ReadFile(filepath.Join(root, "inputs", "mine.txt")); err != nil || string(b) != "mine" {
				t.Errorf("inputs/mine.txt holds %q, %v", b, err)
			}
		})
	}
}

// Remove takes one blob, never a directory of them: a batch whose
// urls_file names "results" removes nothing.
func TestRemoveTakesOneBlobOnly(t *testing.T) {
	ctx := context.Background()
	d, _ := NewDir(t.TempDir())
	for _, k := range []string{"results/a.jsonl", "inputs/list.txt"} {
		w, _ := d.Create(ctx, k)
		fmt.Fprint(w, "x")
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Remove(ctx, "results"); !errors.Is(err, ErrNotOneBlob) {
		t.Errorf("Remove of a directory: %v, want ErrNotOneBlob", err)
	}
	if _, err := os.Stat(filepath.Join(d.Root, "results", "a.jsonl")); err != nil {
		t.Errorf("Remove of the directory took its blob: %v", err)
	}
	if err := d.Remove(ctx, "inputs/list.txt"); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, "inputs/list.txt"); err != nil {
		t.Errorf("Remove of a blob already gone: %v", err)
	}
	if _, err := d.Open(ctx, "inputs/list.txt"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after Remove: %v", err)
	}
}
