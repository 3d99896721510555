// Package s3test runs a real S3 server for tests: SeaweedFS's `weed mini`,
// built from its module (outside batchfetch's own module graph) and
// started on loopback with credentials of its own.
package s3test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Version is the SeaweedFS module version the tests run. Its go.mod has
// replace directives, so `go install ...@Version` is refused: Binary
// builds it with the module's source as the main module instead.
const Version = "v0.0.0-20261109003541-7506e5f91cd6"

const module = "github.com/seaweedfs/seaweedfs"

// BinaryEnv names a weed binary to use instead of the cached build.
const BinaryEnv = "BATCHFETCH_WEED"

// Binary returns the path of a weed binary at Version: $BATCHFETCH_WEED
// when set, or a build kept in the user's cache directory, made on first
// use (about 4 minutes cold, with its downloads). Concurrent callers (test
// packages run in parallel) wait for one build.
func Binary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("s3test: %s=%s: %w", BinaryEnv, p, err)
		}
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("s3test: no cache directory for the weed build: %w", err)
	}
	dir := filepath.Join(cache, "batchfetch", "tools")
	bin := filepath.Join(dir, "weed-"+Version)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("s3test: %w", err)
	}
	lock, err := os.OpenFile(bin+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("s3test: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("s3test: locking %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(bin); err == nil { // built while this one waited
		return bin, nil
	}
	return bin, build(bin)
}

// build compiles weed at Version into bin: the module's source is copied
// somewhere writable and built there as the main module, so its replace
// directives apply and nothing of it enters batchfetch's go.sum.
func build(bin string) error {
	start := time.Now()
	out, err := exec.Command("go", "mod", "download", "-json", module+"@"+Version).Output()
	if err != nil {
		return fmt.Errorf("s3test: go mod download %s@%s: %w", module, Version, withStderr(err))
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return fmt.Errorf("s3test: go mod download %s@%s gave no source directory: %s %v", module, Version, m.Error, err)
	}
	src, err := os.MkdirTemp(filepath.Dir(bin), "weed-src-")
	if err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	defer os.RemoveAll(src)
	if out, err := exec.Command("cp", "-r", m.Dir+"/.", src).CombinedOutput(); err != nil {
		return fmt.Errorf("s3test: copying %s: %v\n%s", m.Dir, err, out)
	}
	if out, err := exec.Command("chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		return fmt.Errorf("s3test: %v\n%s", err, out)
	}
	tmp := bin + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, "./weed")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("s3test: building weed: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	fmt.Fprintf(os.Stderr, "s3test: built weed %s in %s\n", Version, time.Since(start).Round(time.Second))
	return nil
}

func withStderr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}
