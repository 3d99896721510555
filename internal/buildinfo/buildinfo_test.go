package buildinfo

import (
	"strings"
	"testing"
)

// A test binary has no commit stamped: its ID is its executable's hash,
// the same every time it is asked; a release stamp wins.
func TestIDIsStableAndAStampWins(t *testing.T) {
	first := compute()
	if first == "" || first != compute() {
		t.Fatalf("ID %q, then %q: want one non-empty ID", first, compute())
	}
	if rev, _ := vcs(); rev == "" && (!strings.HasPrefix(first, "exe-") || len(first) != len("exe-")+12) {
		t.Errorf("ID without a commit = %q, want exe- and 12 hex digits", first)
	}
	Stamp = "v9.9.9"
	defer func() { Stamp = "" }()
	if got := compute(); got != "v9.9.9" {
		t.Errorf("stamped ID = %q, want v9.9.9", got)
	}
}
