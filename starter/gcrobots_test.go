package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/activities"
)

// The fetch workers share what each host's robots.txt says under
// robots/, one record per origin, trusted an hour at most: gc removes
// the records not written for --older-than, which a batch over many
// hosts would otherwise pile up for good, and keeps the fresh ones.
func TestGCRemovesOldRobotsRecords(t *testing.T) {
	dir := t.TempDir()
	write := func(origin string, age time.Duration) string {
		p := filepath.Join(dir, filepath.FromSlash(activities.RobotsKey(origin)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(`{"origin":"`+origin+`","kind":"unavailable"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := write("http://old.example", 40*24*time.Hour)
	fresh := write("http://fresh.example", time.Minute)
	var out, errs bytes.Buffer
	if err := runGC([]string{"--older-than", "720h", "--dry-run", "--blob-dir", dir}, nil, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil || !strings.Contains(out.String(), old) || strings.Contains(out.String(), fresh) ||
		!strings.Contains(errs.String(), "would remove 1 robots.txt records") {
		t.Fatalf("--dry-run: stdout %q, stderr %q, the old record: %v", out.String(), errs.String(), err)
	}
	out.Reset()
	errs.Reset()
	if err := runGC([]string{"--older-than", "720h", "--blob-dir", dir}, nil, &out, &errs); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old robots.txt record is still there (%v); stderr %q", err, errs.String())
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh robots.txt record was removed: %v", err)
	}
	if !strings.Contains(errs.String(), "removed 1 robots.txt records") {
		t.Errorf("stderr: %q", errs.String())
	}
}
