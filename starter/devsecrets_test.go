package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/internal/freeport"
)

// withDecoded is text and, for JSON, every string in it that decodes from
// base64 (payloads' data as the Web UI's API gives them), decoded.
func withDecoded(text string) string {
	var sb strings.Builder
	sb.WriteString(text)
	dec := json.NewDecoder(strings.NewReader(text))
	for {
		tok, err := dec.Token()
		if err != nil {
			return sb.String()
		}
		if s, ok := tok.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				sb.WriteByte('\n')
				sb.Write(b)
			}
		}
	}
}

func getText(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDevModeHoldsTheStartersSecrets runs `starter --dev --serve` as a
// user does on a laptop, the token in BATCHFETCH_SECRET_PARTNER_TOKEN of
// its environment and named in --header: a server that demands the token
// gets it, another origin a redirect leads to does not, and the token is
// in none of what the Web UI's API shows of the batch (its page, its
// history both ways, the list), the starter's output (debug log of the
// built-in workers included) or its results file.
func TestDevModeHoldsTheStartersSecrets(t *testing.T) {
	const token = "pt-dev-3f8a61c2d9e047b5"
	var mu sync.Mutex
	var seen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, "other "+r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = io.WriteString(w, "landed")
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, "api "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch {
		case r.Header.Get("Authorization") != "Bearer "+token:
			http.Error(w, "token required", http.StatusUnauthorized)
		case r.URL.Path == "/moved":
			http.Redirect(w, r, other.URL+"/landed", http.StatusFound)
		default:
			_, _ = io.WriteString(w, "data")
		}
	}))
	defer api.Close()

	dir := t.TempDir()
	uiPort := freeport.Run(t, 1)
	ui := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	out := filepath.Join(dir, "results.jsonl")
	const id = "dev-secrets"
	cmd := exec.Command(binary, "--dev", "--serve", "--dev-db", filepath.Join(dir, "dev.sqlite"), "--dev-port", fmt.Sprint(freeport.Run(t, 8)),
		"--dev-ui-port", fmt.Sprint(uiPort), "--log-level", "debug", "--id", id, "--out", out,
		"--header", "Authorization: Bearer ${secret:PARTNER_TOKEN}", api.URL+"/a", api.URL+"/moved")
	cmd.Env = append(os.Environ(), "BATCHFETCH_SECRET_PARTNER_TOKEN="+token, "BATCHFETCH_CODEC_KEYS=", "BATCHFETCH_CODEC_KEY_FILE=")
	var output syncOutput
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}()

	// The batch ends; the dev stack serves on.
	base := ui + "/api/v1/namespaces/default/workflows/" + id
	deadline := time.Now().Add(3 * time.Minute)
	for {
		code, page := getText(t, base)
		if code == http.StatusOK && strings.Contains(page, "WORKFLOW_EXECUTION_STATUS_COMPLETED") {
			break
		}
		select {
		case <-done:
			t.Fatalf("the starter ended:\n%s", output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch did not complete (%d):\n%.500s\n%s", code, page, output.String())
		}
		time.Sleep(200 * time.Millisecond) // polling the Web UI's view: nothing can signal it
	}
	places := map[string]string{}
	for _, p := range []string{"", "/history", "/history-reverse"} {
		code, page := getText(t, base+p)
		if code != http.StatusOK {
			t.Fatalf("the Web UI's API %s: %d %.300s", base+p, code, page)
		}
		places["the Web UI's API "+p] = withDecoded(page)
	}
	_, list := getText(t, ui+"/api/v1/namespaces/default/workflows")
	places["the Web UI's list"] = withDecoded(list)
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the starter did not stop on Ctrl-C")
	}
	places["the starter's output"] = output.String()
	results, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	places["the results file"] = string(results)

	for where, text := range places {
		if strings.Contains(text, token) {
			t.Errorf("%s holds the token", where)
		}
	}
	if !strings.Contains(places["the Web UI's API /history"], "${secret:PARTNER_TOKEN}") {
		t.Error("the Web UI's history does not show the secret's reference: the codec is on, or the test looks in the wrong place")
	}
	if !strings.Contains(places["the starter's output"], "secrets of the built-in fetch worker: PARTNER_TOKEN") {
		t.Errorf("the banner does not name the secret:\n%s", places["the starter's output"])
	}
	if n := strings.Count(string(results), `"outcome":"ok"`); n != 2 {
		t.Errorf("results:\n%s", results)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"api /a Bearer " + token, "api /moved Bearer " + token, "other "}
	for _, w := range want {
		found := false
		for _, s := range seen {
			found = found || s == w
		}
		if !found {
			t.Errorf("the servers saw %q, want %q among them", seen, w)
		}
	}
}

// syncOutput is a process's output, written while the test reads it.
type syncOutput struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
