package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batchfetch/batchfetch/blobstore"
)

func TestClassifyStatus(t *testing.T) {
	cases := map[int]StatusClass{
		200: StatusOK, 204: StatusOK, 299: StatusOK,
		301: StatusPermanent, 400: StatusPermanent, 401: StatusPermanent, 404: StatusPermanent, 410: StatusPermanent,
		408: StatusRetryable, 429: StatusRetryable, 500: StatusRetryable, 502: StatusRetryable, 503: StatusRetryable, 599: StatusRetryable,
		600: StatusPermanent, 100: StatusPermanent,
	}
	for code, want := range cases {
		if got := ClassifyStatus(code); got != want {
			t.Errorf("ClassifyStatus(%d) = %v, want %v", code, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"999999999", time.Hour},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		if got := RetryAfter(tc.h, now); got != tc.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("https://bob:hunter2@example.com/x"); strings.Contains(got, "hunter2") {
		t.Errorf("Redact kept the password: %s", got)
	}
	if got := Redact("https://example.com/x"); got != "https://example.com/x" {
		t.Errorf("Redact changed a plain URL: %s", got)
	}
}

type fetchEnv struct {
	env   *testsuite.TestActivityEnvironment
	dir   string
	store *blobstore.Dir
	f     *Fetcher
	h     *Hasher
}

func newFetchEnv(t *testing.T, maxBody int64) *fetchEnv {
	var s testsuite.WorkflowTestSuite
	dir := t.TempDir()
	store, err := blobstore.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	client := NewHTTPClient(ClientConfig{MaxRedirects: 3})
	t.Cleanup(client.CloseIdleConnections)
	env := s.NewTestActivityEnvironment()
	f := &Fetcher{Client: client, Store: store, MaxBodyBytes: maxBody}
	h := &Hasher{Store: store}
	env.RegisterActivity(f)
	env.RegisterActivity(h)
	return &fetchEnv{env: env, dir: dir, store: store, f: f, h: h}
}

func (e *fetchEnv) files(t *testing.T) []string {
	var out []string
	_ = filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestFetchStoresBodyAndHashMatches(t *testing.T) {
	body := strings.Repeat("0123456789", 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "/final", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	v, err := e.env.ExecuteActivity(e.f.Fetch, FetchRequest{URL: srv.URL + "/start", Blob: "batches/r/000001"})
	if err != nil {
		t.Fatal(err)
	}
	var fr FetchResult
	if err := v.Get(&fr); err != nil {
		t.Fatal(err)
	}
	if fr.Status != 200 || fr.Size != int64(len(body)) || fr.Blob != "batches/r/000001" || fr.Attempt != 1 {
		t.Errorf("got %+v", fr)
	}
	v, err = e.env.ExecuteActivity(e.h.Hash, HashRequest{Blob: fr.Blob})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashResult
	if err := v.Get(&hr); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if hr.SHA256 != hex.EncodeToString(sum[:]) || hr.Size != int64(len(body)) {
		t.Errorf("hash %+v, want %x", hr, sum)
	}
}

func TestFetchFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/big":
			_, _ = io.WriteString(w, strings.Repeat("x", 2000))
		case "/big-declared":
			w.Header().Set("Content-Length", "5000")
			_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		case "/short":
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, "only this")
		case "/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/gone":
			w.WriteHeader(http.StatusGone)
		}
	}))
	defer srv.Close()
	cases := []struct {
		path, typ string
		retryable bool
		status    int
		delay     time.Duration
	}{
		{"/loop", ErrTooManyRedirects, false, 0, 0},
		{"/big", ErrBodyTooLarge, false, 200, 0},
		{"/big-declared", ErrBodyTooLarge, false, 200, 0},
		{"/short", ErrTruncated, true, 200, 0},
		{"/busy", ErrHTTPStatus, true, 503, 7 * time.Second},
		{"/gone", ErrHTTPStatus, false, 410, 0},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			e := newFetchEnv(t, 1000)
			_, err := e.env.ExecuteActivity(e.f.Fetch, FetchRequest{URL: srv.URL + tc.path, Blob: "batches/r/000002"})
			var appErr *temporal.ApplicationError
			if !errors.As(err, &appErr) {
				t.Fatalf("got %v, want an ApplicationError", err)
			}
			if appErr.Type() != tc.typ || appErr.NonRetryable() == tc.retryable || appErr.NextRetryDelay() != tc.delay {
				t.Errorf("got type %s retryable %v delay %v (%s), want %s %v %v", appErr.Type(), !appErr.NonRetryable(), appErr.NextRetryDelay(), appErr.Message(), tc.typ, tc.retryable, tc.delay)
			}
			var d FailureDetails
			if err := appErr.Details(&d); err != nil || d.Status != tc.status || d.Attempt != 1 {
				t.Errorf("details %+v (%v), want status %d attempt 1", d, err, tc.status)
			}
			if f := e.files(t); len(f) != 0 {
				t.Errorf("a failed fetch left files: %v", f)
			}
		})
	}
}

func TestFetchNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/x"
	srv.Close() // nothing listens there any more
	e := newFetchEnv(t, 0)
	_, err := e.env.ExecuteActivity(e.f.Fetch, FetchRequest{URL: url, Blob: "batches/r/000003"})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrNetwork || appErr.NonRetryable() {
		t.Fatalf("got %v, want a retryable Network error", err)
	}
}

func TestHashMissingBlobIsFinal(t *testing.T) {
	e := newFetchEnv(t, 0)
	_, err := e.env.ExecuteActivity(e.h.Hash, HashRequest{Blob: "batches/r/nothing"})
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != ErrBlob || !appErr.NonRetryable() {
		t.Fatalf("got %v, want a final Blob error", err)
	}
}

func TestDirStore(t *testing.T) {
	ctx := context.Background()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.Create(ctx, "batches/run/000001")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "body")
	if _, err := store.Open(ctx, "batches/run/000001"); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("blob visible before Commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, "batches/run/000001")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "body" {
		t.Errorf("read %q", b)
	}
	aborted, _ := store.Create(ctx, "batches/run/000002")
	fmt.Fprint(aborted, "half")
	if err := aborted.Abort(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../escape", "/abs", "a/../../b", ""} {
		if _, err := store.Create(ctx, bad); err == nil {
			t.Errorf("Create(%q) accepted a key outside the store", bad)
		}
	}
	if err := store.DeletePrefix(ctx, "batches/run"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(store.Root)
	if len(entries) != 0 {
		t.Errorf("DeletePrefix left %d entries in the root", len(entries))
	}
}
