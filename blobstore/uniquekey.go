package blobstore

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// UniqueKey is a key of its own under dir (which ends in "/"): name (a
// workflow ID) with what is unsafe in a file name made "_", a random
// part, then suffix: "inputs/nightly-3f2a9c01b7de.txt". Two uploads never
// share one.
func UniqueKey(dir, name, suffix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return dir + strings.Map(safeKeyRune, name) + "-" + hex.EncodeToString(b[:]) + suffix
}

// safeKeyRune keeps workflow IDs usable as file names.
func safeKeyRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
		return r
	}
	return '_'
}
