package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
)

// rawServer answers every request with the raw response that reply makes
// of it, after recording it.
func rawServer(t *testing.T, log *seenLog, reply func(r *http.Request) string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString(reply(r))
		_ = buf.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A server may echo what it was sent, in its reason phrase or in a
// Location header: whatever it sends back, the secret's value must not end
// up in the URL's error (which goes into history and the results file).
func TestBreakASecretEchoedByTheServerIsNotInTheError(t *testing.T) {
	for name, reply := range map[string]func(r *http.Request) string{
		"reason phrase": func(r *http.Request) string {
			return "HTTP/1.1 403 " + r.Header.Get("Authorization") + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		},
		"unparsable Location": func(r *http.Request) string {
			return "HTTP/1.1 302 Found\r\nLocation: http://%zz/?t=" + r.Header.Get("X-Api-Key") + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		},
	} {
		t.Run(name, func(t *testing.T) {
			var log seenLog
			srv := rawServer(t, &log, reply)
			e := newFetchEnv(t, 0)
			e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken, "KEY": testToken}
			req := &Request{Headers: []Header{
				{Name: "Authorization", Value: "Bearer ${secret:PARTNER_TOKEN}"},
				{Name: "X-Api-Key", Value: "${secret:KEY}"},
			}}
			it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: req})[0]
			if len(log.all()) == 0 {
				t.Fatal("the server got nothing")
			}
			if strings.Contains(it.Error, testToken) {
				t.Errorf("the URL's error holds the secret's value: %q", it.Error)
			}
		})
	}
}

// A POST redirected (307) to a URL the server built from the token (an
// OAuth-style callback) that cannot be fetched: the error names the
// redirect's URL; for a GET the fetcher strips it (unwrapURL), for a POST
// it does not.
func TestBreakAPostsRedirectErrorHoldsNoSecret(t *testing.T) {
	var log seenLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("Location", "ftp://127.0.0.1/cb?token="+tok)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		req := &Request{Method: m, Headers: []Header{{Name: "Authorization", Value: "Bearer ${secret:PARTNER_TOKEN}"}}}
		it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: req})[0]
		if it.Outcome == "" || strings.Contains(it.Error, testToken) {
			t.Errorf("%s: item %+v: the error holds the secret's value", m, it)
		}
	}
}

// {"secret": ""} names no secret: it must be refused, not sent as an
// empty header.
func TestBreakAnEmptySecretNameIsRefused(t *testing.T) {
	var f RequestFields
	if err := json.Unmarshal([]byte(`{"headers": {"Authorization": {"secret": ""}}}`), &f); err != nil {
		return // refused while decoding: fine
	}
	r, err := f.Request()
	if err == nil {
		t.Errorf(`{"secret": ""} is accepted: request %+v`, r)
	}
}

// A POST that may not be retried reaches the server; its answer meets a
// full blob disk. The POST must not be made again (the server has had
// it), in a chunk and as a URL activity.
func TestBreakAPostIsNotMadeAgainAfterAFullDisk(t *testing.T) {
	for _, native := range []bool{false, true} {
		var mu sync.Mutex
		posts := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			posts++
			mu.Unlock()
			_, _ = io.WriteString(w, "created")
		}))
		e := newFetchEnv(t, 0)
		disk := newFullDisk(t, 1<<40)
		e.f.Store = disk
		go func() {
			<-disk.refused
			disk.makeRoom()
		}()
		req := &Request{Method: http.MethodPost, Body: &Body{Text: "order=1"}}
		if native {
			_, _ = e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: srv.URL + "/orders"}, Policy: quick, Request: req})
		} else {
			e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/orders"), Concurrency: 1, Policy: quick, Request: req})
		}
		srv.Close()
		if posts != 1 {
			t.Errorf("native %v: the server got the POST %d times, want once", native, posts)
		}
	}
}

// A worker can be lost at any moment. When it is lost while a POST that
// may not be retried is at the server, the chunk is retried from the last
// heartbeat Temporal has: that heartbeat must say the POST was begun, or
// the next attempt sends it again.
func TestBreakAPostLostWithItsWorkerBeforeAHeartbeatIsNotMadeAgain(t *testing.T) {
	var mu sync.Mutex
	posts := 0
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
		arrived <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "created")
	}))
	defer srv.Close()
	req := FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/orders"), Concurrency: 1, Policy: quick,
		Request: &Request{Method: http.MethodPost, Body: &Body{Text: "order=1"}}}

	// The first attempt: the worker is lost the moment the POST is at the
	// server; the last heartbeat recorded by then is what the retry gets.
	e := newFetchEnv(t, 0)
	var hmu sync.Mutex
	var last *FetchCheckpoint
	e.env.SetOnActivityHeartbeatListener(func(_ *activity.Info, d converter.EncodedValues) {
		var cp FetchCheckpoint
		if d.Get(&cp) == nil {
			hmu.Lock()
			last = &cp
			hmu.Unlock()
		}
	})
	first := make(chan struct{})
	go func() {
		defer close(first)
		_, _ = e.env.ExecuteActivity(e.f.FetchChunk, req)
	}()
	defer func() { <-first }() // after release: the lost attempt ends with the test
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the POST never came")
	}
	hmu.Lock()
	lost := last
	hmu.Unlock()

	// The retried attempt, on another worker, from that heartbeat.
	e2 := newFetchEnv(t, 0)
	if lost == nil {
		// No heartbeat had reached the server. Temporal's retry is then
		// attempt 2, which the test environment cannot say; heartbeat
		// details say "a retry" here.
		lost = &FetchCheckpoint{}
	}
	e2.env.SetHeartbeatDetails(*lost)
	done := make(chan []Fetched, 1)
	second := make(chan struct{})
	defer func() { <-second }()
	defer close(release) // first of all: both attempts end
	go func() {
		defer close(second)
		v, err := e2.env.ExecuteActivity(e2.f.FetchChunk, req)
		var out FetchChunkResult
		if err == nil {
			_ = v.Get(&out)
		}
		done <- out.Items
	}()
	select {
	case <-arrived:
		t.Errorf("the retried chunk sent the POST again (last heartbeat before the loss: %+v)", lost)
	case items := <-done:
		if len(items) != 1 || !strings.Contains(items[0].Error, "not retried") {
			t.Errorf("retried chunk: %+v", items)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retried chunk did nothing")
	}
}

// Duplicated keys of one header in the batch's JSON: the contract refuses
// "a name given twice in any case"; the same spelling twice is a name
// given twice too, and must not silently keep the last.
func TestBreakAHeaderGivenTwiceWithTheSameSpellingIsRefused(t *testing.T) {
	var f RequestFields
	if err := json.Unmarshal([]byte(`{"headers": {"X-Tenant": "a", "X-Tenant": "b"}}`), &f); err != nil {
		return
	}
	if _, err := f.Request(); err == nil {
		t.Errorf("a header given twice is accepted, keeping %q", f.Headers["X-Tenant"].Value)
	}
}

// A chain that leaves the origin and comes back must not carry the
// credentials back, and a 307 with a body to another port drops them.
func TestBreakRedirectChainsAndPortsDropCredentials(t *testing.T) {
	var log seenLog
	var back *httptest.Server
	away := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		http.Redirect(w, r, back.URL+"/again", http.StatusTemporaryRedirect)
	}))
	defer away.Close()
	back = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := log.record(r)
		if r.URL.Path == "/start" {
			http.Redirect(w, r, away.URL+"/hop", http.StatusTemporaryRedirect)
			return
		}
		fmt.Fprint(w, sr.body)
	}))
	defer back.Close()
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken}
	req := &Request{Method: http.MethodPost, Body: &Body{Text: "q"}, Headers: []Header{
		{Name: "Authorization", Value: "Bearer ${secret:PARTNER_TOKEN}"},
		{Name: "X-Sig", Value: "sig=${secret:PARTNER_TOKEN}"},
	}}
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(back.URL + "/start"), Concurrency: 1, Policy: quick, Request: req})[0]
	if it.Status != 200 {
		t.Fatalf("item %+v", it)
	}
	got := log.all()
	if len(got) != 3 {
		t.Fatalf("%d requests", len(got))
	}
	for _, r := range got[1:] {
		for _, h := range []string{"Authorization", "X-Sig"} {
			if strings.Contains(r.header.Get(h), testToken) {
				t.Errorf("%s got %s after leaving the origin", r.path, h)
			}
		}
		if r.method != http.MethodPost || r.body != "q" {
			t.Errorf("%s: a 307 lost the method or body: %+v", r.path, r)
		}
	}
}

// A staged URL with a body within the limit (64 KiB of text) but whose
// JSON is longer (an XML body: json.Marshal writes each < and > as six
// bytes) must stage and read back: the chunk file's line is longer than
// the scanner that reads it allows.
func TestBreakAStagedURLWithALargeTextBodyReadsBack(t *testing.T) {
	e := newFetchEnv(t, 0)
	ctx := context.Background()
	body := strings.Repeat("<a>x</a>", 5000) // 40,000 bytes, under MaxBodyText
	var line bytes.Buffer
	enc := json.NewEncoder(&line) // as a user's tool may write it: < as <
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]any{"url": "http://a.example/1", "method": "POST", "body": body})
	w, _ := e.store.Create(ctx, "inputs/list.jsonl")
	fmt.Fprintf(w, "http://a.example/0\n%s", line.Bytes())
	_ = w.Commit()
	v, err := e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/r", URLsFile: "inputs/list.jsonl", ChunkSize: 10})
	if err != nil {
		t.Fatalf("staging a body of %d bytes: %v", len(body), err)
	}
	var st StageResult
	_ = v.Get(&st)
	tasks, err := readURLs(ctx, e.store, URLsKey("batches/r", 0), 0)
	if err != nil || len(tasks) != 2 || tasks[1].R == nil || tasks[1].R.Body.Text != body {
		t.Fatalf("staged %+v; reading its chunk back: %d tasks, %v", st, len(tasks), err)
	}
}
