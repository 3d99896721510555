package blobstore

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// UniqueKey is a key of its own under dir (which ends in "/"): name (a
// workflow ID) with what is unsafe in a file name made "_", a random
// part, then suffix: "inputs/nightly-3f2a9c01b7de.txt". Two uploads never
// share one. A name longer than maxKeyName bytes is cut there: a workflow
// ID may run to 1000 bytes, a file name to 255.
func UniqueKey(dir, name, suffix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name = strings.Map(safeKeyRune, name) // ASCII only, one byte a rune
	if len(name) > maxKeyName {
		name = name[:maxKeyName]
	}
	return dir + name + "-" + hex.EncodeToString(b[:]) + suffix
}

// maxKeyName bounds the name in a UniqueKey, so that the key's last
// element, with the directory store's temporary prefix and suffix, stays
// a file name every file system takes.
const maxKeyName = 128

// safeKeyRune keeps workflow IDs usable as file names.
func safeKeyRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
		return r
	}
	return '_'
}
