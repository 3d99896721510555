package activities

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustStore(t *testing.T, dir string, hosts map[string][]string, environ ...string) *SecretStore {
	t.Helper()
	s, err := NewSecretStore(dir, hosts, environ)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantSecret(t *testing.T, s *SecretStore, name, want string) {
	t.Helper()
	v, _, ok, err := s.Secret(name)
	if err != nil || !ok || v != want {
		t.Errorf("Secret(%s) = %q, ok %v, err %v; want %q", name, v, ok, err, want)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The environment comes first, then the directory; a file loses one
// trailing line break, no more.
func TestSecretStoreEnvThenFile(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "BOTH"), "from-file\n")
	write(t, filepath.Join(dir, "LF"), "a b\n\n")
	write(t, filepath.Join(dir, "CRLF"), "token\r\n")
	write(t, filepath.Join(dir, "BARE"), "bare")
	write(t, filepath.Join(dir, "HOSTS"), "file-hosts\n")
	s := mustStore(t, dir, nil, "BATCHFETCH_SECRET_BOTH=from-env", "BATCHFETCH_SECRET_ENVONLY=e=1\n", "OTHER=x",
		"BATCHFETCH_SECRET_HOSTS=HOSTS=api.example.com")
	wantSecret(t, s, "BOTH", "from-env")
	wantSecret(t, s, "ENVONLY", "e=1\n") // a variable is taken as it is
	wantSecret(t, s, "LF", "a b\n")
	wantSecret(t, s, "CRLF", "token")
	wantSecret(t, s, "BARE", "bare")
	wantSecret(t, s, "HOSTS", "file-hosts") // BATCHFETCH_SECRET_HOSTS is --secret-hosts
	if v, _, ok, err := s.Secret("MISSING"); ok || err != nil || v != "" {
		t.Errorf("a missing secret: %q %v %v, want not ok and no error", v, ok, err)
	}
	if got, want := s.Where("MISSING"), "BATCHFETCH_SECRET_MISSING and "+filepath.Join(dir, "MISSING"); got != want {
		t.Errorf("Where = %q, want %q", got, want)
	}
	if got := mustStore(t, "", nil).Where("X"); got != "BATCHFETCH_SECRET_X (no --secrets-dir)" {
		t.Errorf("Where without a directory = %q", got)
	}
	write(t, filepath.Join(dir, "my-key"), "v")
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}
	n, err := s.Names()
	want := SecretNames{Env: []string{"BOTH", "ENVONLY"}, Dir: []string{"BARE", "BOTH", "CRLF", "HOSTS", "LF"}, Unusable: []string{"my-key"}}
	if err != nil || !reflect.DeepEqual(n, want) {
		t.Errorf("Names = %+v, %v; want %+v", n, err, want)
	}
}

// Hosts come with the secret; a secret without an entry goes anywhere.
func TestSecretStoreScope(t *testing.T) {
	s := mustStore(t, "", map[string][]string{"A": {"api.example.com", "*.example.org"}}, "BATCHFETCH_SECRET_A=1", "BATCHFETCH_SECRET_B=2")
	if _, hosts, _, _ := s.Secret("A"); !reflect.DeepEqual(hosts, []string{"api.example.com", "*.example.org"}) {
		t.Errorf("hosts of A = %v", hosts)
	}
	if _, hosts, _, _ := s.Secret("B"); hosts != nil {
		t.Errorf("hosts of B = %v, want nil (anywhere)", hosts)
	}
}

// Rotation needs no restart: a Kubernetes ..data swap, a rewrite of
// another size, and a rewrite that keeps the size (seen within a second).
func TestSecretStoreRotation(t *testing.T) {
	dir := t.TempDir()
	version := func(name, value string) {
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(d, "TOKEN"), value+"\n")
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_01", "one")
	if err := os.Symlink(filepath.Join("..data", "TOKEN"), filepath.Join(dir, "TOKEN")); err != nil {
		t.Fatal(err)
	}
	s := mustStore(t, dir, nil)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	wantSecret(t, s, "TOKEN", "one")
	version("..2026_02", "two") // same size, another inode
	wantSecret(t, s, "TOKEN", "two")

	plain := filepath.Join(dir, "PLAIN")
	write(t, plain, "first")
	wantSecret(t, s, "PLAIN", "first")
	write(t, plain, "second")
	wantSecret(t, s, "PLAIN", "second")
	// Same inode, same size, and the modification time put back: only
	// the clock tells.
	fi, _ := os.Stat(plain)
	write(t, plain, "SECOND")
	if err := os.Chtimes(plain, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	wantSecret(t, s, "PLAIN", "second")
	now = now.Add(rereadAfter)
	wantSecret(t, s, "PLAIN", "SECOND")

	if err := os.Remove(plain); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.Secret("PLAIN"); ok || err != nil {
		t.Errorf("a removed secret: ok %v, err %v; want gone", ok, err)
	}
}

// A file that is there and cannot be read is an error naming the file,
// never its content.
func TestSecretStoreUnreadable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "LOCKED")
	write(t, path, "hunter2")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	s := mustStore(t, dir, nil)
	if f, err := os.Open(path); err == nil {
		f.Close()
		t.Log("running as root: a mode-0 file is readable, not checked")
	} else {
		_, _, ok, err := s.Secret("LOCKED")
		if ok || err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("unreadable: ok %v, err %v; want an error naming %s", ok, err, path)
		}
	}
	loop := filepath.Join(dir, "LOOP") // there, and unreadable even by root
	if err := os.Symlink("LOOP", loop); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, err := s.Secret("LOOP"); ok || err == nil || !strings.Contains(err.Error(), loop) {
		t.Errorf("a symlink loop: ok %v, err %v; want an error naming %s", ok, err, loop)
	}
	if err := os.Mkdir(filepath.Join(dir, "ADIR"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Secret("ADIR"); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("a directory: %v", err)
	}
	write(t, filepath.Join(dir, "BIG"), strings.Repeat("x", MaxSecretBytes+1))
	if _, _, _, err := s.Secret("BIG"); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Errorf("a file over the limit: %v", err)
	}
	if _, err := NewSecretStore(filepath.Join(dir, "nope"), nil, nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a missing directory: %v", err)
	}
}
