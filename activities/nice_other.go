//go:build !linux

package activities

// niced runs f: thread niceness is set on Linux only.
func niced(_ int, f func()) { f() }
