package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/codec"
	"github.com/batchfetch/batchfetch/internal/devstack"
)

// Workers that encrypt their payloads, a starter without
// BATCHFETCH_CODEC_KEYS: the progress it cannot read is said so, with
// what to do, by the starter that waits (once) and by `starter status`;
// neither shows a bar of garbage nor crashes.
func TestProgressOfEncryptedWorkersWithoutTheKeys(t *testing.T) {
	keys := "k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))
	cd, err := codec.New(strings.Split(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	stack, err := devstack.Start(context.Background(), devstack.Config{BlobDir: t.TempDir(), DataConverter: cd.DataConverter(), FailureConverter: cd.FailureConverter()})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Stop()
	release := make(chan struct{})
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "page")
	}))
	defer site.Close()
	defer close(release)
	addr := stack.FrontendAddress()
	id := fmt.Sprint("encrypted-", time.Now().UnixNano())
	lines, _, cmd := watchStderrEnv(t, addr, nil, "--id", id, "--blob-dir", stack.BlobDir(), site.URL+"/a", site.URL+"/b")
	defer func() {
		_ = stack.Client.CancelWorkflow(context.Background(), id, "")
		_ = cmd.Process.Kill()
	}()
	const want = "set BATCHFETCH_CODEC_KEYS"
	seen, _ := waitForLine(t, lines, time.Minute, "progress cannot be read", want)
	for _, l := range seen {
		if n, _, ok := countOf(l); ok && n != 0 {
			t.Errorf("a bar with a count: %q", l)
		}
	}
	r := starter(t, "", []string{"TEMPORAL_ADDRESS=" + addr}, "status", id)
	if r.code != 0 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stdout, "status=Running") {
		t.Errorf("status without the keys: exit %d, want 0, the batch running and %q:\n%s%s", r.code, want, r.stdout, r.stderr)
	}
}
