package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A batch that ended without its cleanup (terminated) leaves its scratch,
// kept parts of bodies too: gc removes the scratch nothing wrote to for
// --older-than (a week at least), and leaves a running batch's alone,
// even where most of its files are old, and a waiting one's.
func TestGCRemovesTheScratchOfBatchesThatEndedWithoutCleanup(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, age time.Duration) string {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("part of a body"), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		for d := p; d != dir; d = filepath.Dir(d) {
			if err := os.Chtimes(d, when, when); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	terminated := write("batches/run-terminated/work/000000000/.000000003.0a1b2c3d4e5f6a7b.partial", 9*24*time.Hour)
	write("batches/run-terminated/urls/000000.txt", 9*24*time.Hour)
	running := write("batches/run-running/urls/000000.txt", 9*24*time.Hour)
	waiting := write("batches/run-waiting/urls/000000.txt", 48*time.Hour)
	write("batches/run-running/work/000000100/.000000101.0a1b2c3d4e5f6a7b.partial", time.Minute)

	var out, errs bytes.Buffer
	if err := runGC([]string{"--older-than", "24h", "--dry-run", "--blob-dir", dir}, nil, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(terminated); err != nil || !strings.Contains(out.String(), "run-terminated") || strings.Contains(out.String(), "run-running") ||
		!strings.Contains(errs.String(), "would remove the scratch of 1 batches") {
		t.Fatalf("--dry-run: stdout %q, stderr %q, the terminated batch's part: %v", out.String(), errs.String(), err)
	}
	out.Reset()
	errs.Reset()
	if err := runGC([]string{"--older-than", "24h", "--blob-dir", dir}, nil, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "batches", "run-terminated")); !os.IsNotExist(err) {
		t.Errorf("the terminated batch's scratch is still there (%v); stderr %q", err, errs.String())
	}
	for _, p := range []string{running, waiting} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("a running batch's URL list was removed: %v", err)
		}
	}
	if !strings.Contains(errs.String(), "removed the scratch of 1 batches (28 bytes)") {
		t.Errorf("stderr: %q", errs.String())
	}
}
