package buildinfo

import (
	"os"
	"runtime"
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

// --version names the build ID first, then the program's version, the
// Temporal SDK the binary was built with (the one go.mod requires) and Go.
func TestDescribeNamesTheSDKOfGoMod(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, line := range strings.Split(string(mod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "go.temporal.io/sdk" {
			want = f[1]
		}
	}
	if want == "" {
		t.Fatal("go.mod requires no go.temporal.io/sdk")
	}
	lines := strings.Split(strings.TrimSpace(Describe("batchfetch worker", "abc123")), "\n")
	if len(lines) != 4 || lines[0] != "abc123" || !strings.HasPrefix(lines[1], "batchfetch worker ") {
		t.Fatalf("Describe = %q: want the build ID, then the program and its version", lines)
	}
	if lines[2] != "Temporal Go SDK "+want {
		t.Errorf("SDK line %q, want %q", lines[2], "Temporal Go SDK "+want)
	}
	if !strings.HasPrefix(lines[3], runtime.Version()+" ") {
		t.Errorf("Go line %q, want %s first", lines[3], runtime.Version())
	}
}
