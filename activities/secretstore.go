package activities

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// SecretEnvPrefix starts the environment variable of a secret:
// BATCHFETCH_SECRET_<NAME>.
const SecretEnvPrefix = "BATCHFETCH_SECRET_"

// secretHostsEnv is the fetch worker's --secret-hosts flag, not a secret:
// a secret called HOSTS is read from its file only.
const secretHostsEnv = SecretEnvPrefix + "HOSTS"

// MaxSecretBytes bounds a secret file: a value is sent in a header.
const MaxSecretBytes = 64 << 10

// rereadAfter is how long a secret file's value is kept while the file
// looks unchanged (same inode, size and modification time): a rewrite
// that keeps all three is seen within this time.
const rereadAfter = time.Second

// SecretStore is a fetch worker's secrets: the environment variable
// BATCHFETCH_SECRET_<NAME> first, else the file <dir>/<NAME>, one file per
// secret as Kubernetes and Docker Compose mount them. A file's value is its
// content less one trailing line break. A file is read again when it
// changes (Kubernetes swaps a ..data symlink to update its mounts), so a
// secret rotates without a restart.
type SecretStore struct {
	dir   string
	hosts map[string][]string
	env   map[string]string // name -> value

	now   func() time.Time
	mu    sync.Mutex
	files map[string]*secretFile
}

// secretFile is a file's value as last read, and what the file looked like.
type secretFile struct {
	value string
	info  fs.FileInfo
	read  time.Time
}

// NewSecretStore reads the secrets of environ (os.Environ's form) and of
// dir ("": none). hosts limits where a secret may be sent (a name without
// an entry: anywhere); see HostMatches.
func NewSecretStore(dir string, hosts map[string][]string, environ []string) (*SecretStore, error) {
	s := &SecretStore{dir: dir, hosts: hosts, env: map[string]string{}, now: time.Now, files: map[string]*secretFile{}}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, SecretEnvPrefix)
		if ok && k != secretHostsEnv && CheckSecretName(name) == nil {
			s.env[name] = v
		}
	}
	if dir != "" {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("secrets directory: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("secrets directory %s is not a directory", dir)
		}
	}
	return s, nil
}

// Secret is the value of the secret name and the hosts it may go to.
// A missing secret is not an error; a file that is there and cannot be
// read is (the error names the file, never what is in it).
func (s *SecretStore) Secret(name string) (value string, hosts []string, ok bool, err error) {
	if err := CheckSecretName(name); err != nil {
		return "", nil, false, err
	}
	hosts = s.hosts[name]
	if v, found := s.env[name]; found {
		return v, hosts, true, nil
	}
	if s.dir == "" {
		return "", nil, false, nil
	}
	v, found, err := s.file(name)
	if err != nil || !found {
		return "", nil, false, err
	}
	return v, hosts, true, nil
}

// file is the value of the file name in the directory, read again when
// it changed or when it was read over rereadAfter ago.
func (s *SecretStore) file(name string) (string, bool, error) {
	path := filepath.Join(s.dir, name)
	info, err := os.Stat(path) // through the symlinks
	if errors.Is(err, fs.ErrNotExist) {
		s.forget(name)
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("secret file: %w", err)
	}
	if info.IsDir() {
		return "", false, fmt.Errorf("secret file %s is a directory", path)
	}
	if !info.Mode().IsRegular() {
		// A named pipe or a device would block the read, or never end it.
		return "", false, fmt.Errorf("secret file %s is not a regular file", path)
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.files[name]; c != nil && sameFile(c.info, info) && now.Sub(c.read) < rereadAfter {
		return c.value, true, nil
	}
	v, err := readSecretFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		delete(s.files, name)
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	s.files[name] = &secretFile{value: v, info: info, read: now}
	return v, true, nil
}

func (s *SecretStore) forget(name string) {
	s.mu.Lock()
	delete(s.files, name)
	s.mu.Unlock()
}

// sameFile tells whether b is the file a was, unchanged as far as a stat
// can tell.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// readSecretFile is a secret file's value: its content less one trailing
// "\n" or "\r\n".
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretBytes+1))
	if err != nil {
		return "", fmt.Errorf("secret file %s: %w", path, err)
	}
	if len(b) > MaxSecretBytes {
		return "", fmt.Errorf("secret file %s is over the limit of %d bytes", path, MaxSecretBytes)
	}
	v := string(b)
	if t, ok := strings.CutSuffix(v, "\n"); ok {
		v = strings.TrimSuffix(t, "\r")
	}
	return v, nil
}

// Where says where the store looks for name.
func (s *SecretStore) Where(name string) string {
	env := SecretEnvPrefix + name
	if env == secretHostsEnv {
		env = "" // that variable is --secret-hosts
	}
	switch {
	case s.dir == "" && env == "":
		return "nowhere: no --secrets-dir, and " + secretHostsEnv + " is --secret-hosts"
	case s.dir == "":
		return env + " (no --secrets-dir)"
	case env == "":
		return filepath.Join(s.dir, name)
	}
	return env + " and " + filepath.Join(s.dir, name)
}

// SecretNames lists the secrets a store has, for the log: those of the
// environment, those of the directory, and the directory's files whose
// names cannot be a secret's (a header cannot name them).
type SecretNames struct {
	Env, Dir, Unusable []string
}

// Names lists the secrets the store has, never their values.
func (s *SecretStore) Names() (SecretNames, error) {
	var n SecretNames
	for name := range s.env {
		n.Env = append(n.Env, name)
	}
	sort.Strings(n.Env)
	if s.dir == "" {
		return n, nil
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return n, fmt.Errorf("secrets directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue // Kubernetes' ..data and its timestamped directories
		}
		if fi, err := os.Stat(filepath.Join(s.dir, name)); err != nil || fi.IsDir() {
			continue
		}
		if CheckSecretName(name) != nil {
			n.Unusable = append(n.Unusable, name)
			continue
		}
		n.Dir = append(n.Dir, name)
	}
	return n, nil
}

// Scoped lists the names that have a scope (hosts), sorted.
func (s *SecretStore) Scoped() []string {
	var out []string
	for name := range s.hosts {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
