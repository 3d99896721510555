package main

import (
	"strings"
	"testing"
)

// A worker whose file limit cannot hold its fetch slots says so, and what
// to do; one that can says nothing.
func TestFilesWarning(t *testing.T) {
	if msg := filesWarning(5000, 1<<20); msg != "" {
		t.Errorf("5,000 slots with a limit of 1,048,576 files: %q, want nothing", msg)
	}
	msg := filesWarning(5000, 4096)
	for _, want := range []string{"may open 4096 files", "5000 fetch slots may need 10256", "ulimit -n", "--fetch-slots to 1920"} {
		if !strings.Contains(msg, want) {
			t.Errorf("5,000 slots with a limit of 4,096 files: %q does not say %q", msg, want)
		}
	}
}
