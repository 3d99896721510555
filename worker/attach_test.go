package main

import (
	"context"
	"strings"
	"testing"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/devstack"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// The worker's --blob-dir defaults to the directory every command shares
// (the starter's, the dev stack's).
func TestBlobDirDefaultIsTheSharedOne(t *testing.T) {
	fs, _ := newFlags()
	if got, want := fs.Lookup("blob-dir").DefValue, blobstore.DefaultDir(); got != want {
		t.Errorf("--blob-dir defaults to %q, want blobstore.DefaultDir() %q", got, want)
	}
}

// The attach commands the dev stack prints are real command lines of this
// worker: they parse with its flags, and say the server, the task queues,
// the blob store and, for a fetch worker, the demo site's 127.0.0.1.
func TestDevStackAttachCommandsParse(t *testing.T) {
	blobs := t.TempDir() + "/a dir with 'spaces'"
	s, err := devstack.Start(context.Background(), devstack.Config{BlobDir: blobs, NoWorkers: true,
		Workers: workers.Config{TaskQueue: "tq-attach", CPUTaskQueue: "tq-attach-cpu"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	for _, role := range []string{workers.RoleFetch, workers.RoleCPU} {
		line := s.AttachCommand(role)
		words := shellWords(t, line)
		if len(words) < 4 || words[0] != "TEMPORAL_ADDRESS="+s.FrontendAddress() || strings.Join(words[1:4], " ") != "go run ./worker" {
			t.Fatalf("%s: %q does not start TEMPORAL_ADDRESS=%s go run ./worker", role, line, s.FrontendAddress())
		}
		fs, st := newFlags()
		if err := fs.Parse(words[4:]); err != nil || fs.NArg() != 0 {
			t.Fatalf("%s: %q does not parse as the worker's flags: %v %q", role, line, err, fs.Args())
		}
		if st.cfg.Role != role || st.cfg.TaskQueue != "tq-attach" || st.cfg.CPUTaskQueue != "tq-attach-cpu" || *st.blobDir != blobs {
			t.Errorf("%s: %q gives role %q, queues %q and %q, blob dir %q", role, line, st.cfg.Role, st.cfg.TaskQueue, st.cfg.CPUTaskQueue, *st.blobDir)
		}
		if wantAllow := map[string]string{workers.RoleFetch: "127.0.0.1", workers.RoleCPU: ""}[role]; *st.allow != wantAllow {
			t.Errorf("%s: %q gives --allow %q, want %q", role, line, *st.allow, wantAllow)
		}
	}
}

// shellWords splits a command line as a POSIX shell does for plain words
// and single quotes and backslashes (what the attach commands use).
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted, escaped := false, false, false
	for _, r := range line {
		switch {
		case escaped:
			w.WriteRune(r)
			escaped = false
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == '\\':
			escaped, inWord = true, true
		case r == '"' || r == '$':
			t.Fatalf("%q: unexpected %q outside single quotes", line, r)
		case r == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("%q: unterminated quote", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
