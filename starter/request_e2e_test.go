package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// testSecrets are a fetch worker's secrets, by name.
type testSecrets map[string]string

func (s testSecrets) Secret(name string) (string, []string, bool, error) {
	v, ok := s[name]
	return v, nil, ok, nil
}

func (s testSecrets) Where(name string) string { return "the test's secrets" }

// seen is one request as a server got it.
type seen struct {
	method, auth, trace, note, key string
	body                           []byte
}

// TestHeadersSecretsAndBodiesReachTheServer: a batch started with
// --header-secret, --header, a --data too large for the input and a URL
// file with a JSON line sends each URL the request it was asked for, the
// secret's value put in by the fetch worker; the value is nowhere in the
// workflow's history, and the uploaded body is removed when the batch ends.
func TestHeadersSecretsAndBodiesReachTheServer(t *testing.T) {
	const token = "tok-e2e-VALUE-77"
	var mu sync.Mutex
	got := map[string]seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = seen{r.Method, r.Header.Get("Authorization"), r.Header.Get("X-Trace"), r.Header.Get("X-Note"), r.Header.Get("Idempotency-Key"), b}
		mu.Unlock()
		_, _ = io.WriteString(w, "ok "+r.URL.Path)
	}))
	defer srv.Close()

	queue := fmt.Sprintf("requests-%d", time.Now().UnixNano())
	pools, err := testStack.StartWorkers(workers.Config{Role: workers.RoleFetch, TaskQueue: queue, Secrets: testSecrets{"PARTNER_TOKEN": token}})
	if err != nil {
		t.Fatal(err)
	}
	defer pools.Stop()

	body := bytes.Repeat([]byte("0123456789abcdef"), activities.MaxBodyText/16+64)
	dir := t.TempDir()
	bodyFile := filepath.Join(dir, "body.bin")
	list := filepath.Join(dir, "urls.txt")
	lines := srv.URL + "/plain\n" + `{"url": "` + srv.URL + `/own", "method": "PUT", "body": "own body", "headers": {"X-Note": "n #1", "Idempotency-Key": "k-1"}}` + "\n"
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	id := queue + "-batch"
	r := starter(t, "", nil, "--task-queue", queue, "--id", id, "--blob-dir", workersBlobDir, "--quiet", "--json",
		"--header-secret", "Authorization=PARTNER_TOKEN", "--header", "X-Trace: t-1", "--data", "@"+bodyFile, "--file", list)
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": 2`) {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	mu.Lock()
	plain, own := got["/plain"], got["/own"]
	mu.Unlock()
	if plain.method != "POST" || plain.auth != token || plain.trace != "t-1" || !bytes.Equal(plain.body, body) {
		t.Errorf("/plain got %s, Authorization set %v, X-Trace %q, %d bytes of body; want POST, the secret, t-1 and the %d bytes of --data",
			plain.method, plain.auth == token, plain.trace, len(plain.body), len(body))
	}
	if own.method != "PUT" || own.auth != token || own.trace != "t-1" || own.note != "n #1" || own.key != "k-1" || string(own.body) != "own body" {
		t.Errorf("/own got %s, Authorization set %v, X-Trace %q, X-Note %q, Idempotency-Key %q, body %q", own.method, own.auth == token, own.trace, own.note, own.key, own.body)
	}

	c, err := client.Dial(client.Options{HostPort: hostPort})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	iter := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	events := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		events++
		if s := ev.String(); strings.Contains(s, token) {
			t.Fatalf("event %d (%s) holds the secret's value", ev.GetEventId(), ev.GetEventType())
		} else if ev.GetEventId() == 1 && !strings.Contains(s, "PARTNER_TOKEN") {
			t.Errorf("the started event does not name the secret: %.500s", s)
		}
	}
	if events < 3 {
		t.Errorf("%d events in the history", events)
	}
	if files := inputsOf(t, id+"-"); len(files) != 0 {
		t.Errorf("the batch ended and left its input files: %v", files)
	}
}
