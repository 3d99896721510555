package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"go.temporal.io/sdk/temporal"
)

// Describe is what a binary's --version prints: its build ID alone on the
// first line (scripts read that one; releases before this printed only
// it), then the program and its version, the Temporal Go SDK it was
// built with, and the Go toolchain and platform.
func Describe(program, buildID string) string {
	return fmt.Sprintf("%s\n%s %s\nTemporal Go SDK %s\n%s %s/%s\n", buildID, program, Version(), "v"+temporal.SDKVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// Version is the release's stamp, or else the module's version as Go
// recorded it ("(devel)" for a build in a checkout).
func Version() string {
	if Stamp != "" {
		return Stamp
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
