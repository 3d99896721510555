//go:build unix

package devserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDB takes the database file's lock (a file beside it), so that a
// second dev server on the same file refuses to start instead of sharing
// it. The kernel drops the lock when the process ends, however it ends.
func lockDB(db string) (unlock func(), err error) {
	path := db + ".lock"
	// A first start: the database's directory may not be there yet.
	if err := os.MkdirAll(filepath.Dir(db), 0o755); err != nil {
		return nil, fmt.Errorf("devserver: creating directory for %s: %w", db, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devserver: locking %s: %w", db, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another dev server"
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				who = fmt.Sprintf("another dev server (pid %d)", pid)
			}
			return nil, fmt.Errorf("devserver: the database %s is in use by %s: stop it, or give another database file", db, who)
		}
		return nil, fmt.Errorf("devserver: locking %s: %w", db, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
