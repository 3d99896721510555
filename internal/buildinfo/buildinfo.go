// Package buildinfo names the build a binary is: its Worker Deployment
// build ID and the version it reports.
//
// The ID comes, in order, from a release's stamp
//
//	go build -ldflags "-X github.com/batchfetch/batchfetch/internal/buildinfo.Stamp=v1.4.0" ./worker
//
// from the commit the binary was built from (Go stamps it when building
// in a git checkout; "-dirty-" and the executable's hash are added when
// the checkout had changes), or else from the hash of the executable
// itself. Two builds of different sources get different IDs. A stamp or a
// commit gives every binary of a release the same one, so its fetch and
// CPU workers are one deployment version; the executable's hash does so
// only for binaries built alike (the same command, in the same
// directory): stamp releases.
package buildinfo

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

// Stamp is set at link time by a release build (-ldflags -X).
var Stamp string

var (
	once sync.Once
	id   string
)

// ID is this binary's build ID (see the package documentation).
func ID() string {
	once.Do(func() { id = compute() })
	return id
}

func compute() string {
	if Stamp != "" {
		return Stamp
	}
	rev, dirty := vcs()
	switch {
	case rev != "" && !dirty:
		return short(rev)
	case rev != "":
		return short(rev) + "-dirty-" + exeHash()
	}
	return "exe-" + exeHash()
}

// vcs is the commit the binary was built from, and whether the checkout
// had changes.
func vcs() (rev string, dirty bool) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	return rev, dirty
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// exeHash is the first 12 hex digits of the executable's sha256 ("unknown"
// when it cannot be read).
func exeHash() string {
	p, err := os.Executable()
	if err != nil {
		return "unknown"
	}
	f, err := os.Open(p)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}
