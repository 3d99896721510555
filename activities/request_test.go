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

	"github.com/batchfetch/batchfetch/internal/buildinfo"
)

// mapSecrets is a worker's secrets for tests.
type mapSecrets map[string]string

func (m mapSecrets) Secret(name string) (string, []string, bool, error) {
	v, ok := m[name]
	return v, nil, ok, nil
}

func (m mapSecrets) Where(name string) string { return "the test's map" }

// scopedSecrets limits every secret to hosts.
type scopedSecrets struct {
	mapSecrets
	hosts []string
}

func (s scopedSecrets) Secret(name string) (string, []string, bool, error) {
	v, _, ok, err := s.mapSecrets.Secret(name)
	return v, s.hosts, ok, err
}

// seenLog records the requests a test server got.
type seenLog struct {
	mu   sync.Mutex
	reqs []seenRequest
}

type seenRequest struct {
	method, path, body string
	header             http.Header
}

func (s *seenLog) record(r *http.Request) seenRequest {
	b, _ := io.ReadAll(r.Body)
	sr := seenRequest{method: r.Method, path: r.URL.Path, body: string(b), header: r.Header.Clone()}
	s.mu.Lock()
	s.reqs = append(s.reqs, sr)
	s.mu.Unlock()
	return sr
}

func (s *seenLog) all() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.reqs...)
}

const testToken = "tok-5f1c9e0a7d2b4c68"

// tokenServer answers 200 only to a request with the test token.
func tokenServer(t *testing.T, log *seenLog) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := log.record(r)
		if sr.header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello %s %s", sr.method, sr.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func bearer() *Request {
	return &Request{Headers: []Header{{Name: "Authorization", Value: "Bearer ${secret:PARTNER_TOKEN}"}, {Name: "X-Trace", Value: "t1"}}}
}

func TestASecretHeaderReachesTheServerAndNothingElse(t *testing.T) {
	var log seenLog
	srv := tokenServer(t, &log)
	e := newFetchEnv(t, 0)
	e.f.Secrets, e.f.Identity = mapSecrets{"PARTNER_TOKEN": testToken}, "w1@host"
	v, err := e.env.ExecuteActivity(e.f.FetchChunk, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: bearer()})
	if err != nil {
		t.Fatal(err)
	}
	var out FetchChunkResult
	_ = v.Get(&out)
	if it := out.Items[0]; it.Outcome != "" || it.Status != 200 {
		t.Fatalf("item %+v, want a body", it)
	}
	got := log.all()
	if len(got) != 1 || got[0].header.Get("X-Trace") != "t1" {
		t.Fatalf("server saw %+v", got)
	}
	b, _ := json.Marshal(out)
	if strings.Contains(string(b), testToken) {
		t.Errorf("the fetch result holds the secret's value: %s", b)
	}
}

func TestAMissingSecretFailsTheURLNamingItAndSendsNothing(t *testing.T) {
	var log seenLog
	srv := tokenServer(t, &log)
	e := newFetchEnv(t, 0)
	e.f.Identity = "w1@host"
	e.f.Secrets = mapSecrets{"OTHER": "x"}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: bearer()})
	it := items[0]
	if it.Outcome != OutcomeError || !strings.Contains(it.Error, "PARTNER_TOKEN") || !strings.Contains(it.Error, "w1@host") || it.Attempts != 1 {
		t.Errorf("item %+v, want a final error naming the secret and the worker", it)
	}
	if n := len(log.all()); n != 0 {
		t.Errorf("the server got %d requests from a worker without the secret", n)
	}
}

func TestASecretGoesOnlyToTheHostsItIsLimitedTo(t *testing.T) {
	var log seenLog
	srv := tokenServer(t, &log)
	for name, tc := range map[string]struct {
		secrets Secrets
		req     *Request
	}{
		"worker": {scopedSecrets{mapSecrets{"PARTNER_TOKEN": testToken}, []string{"api.example.com"}}, bearer()},
		"batch": {mapSecrets{"PARTNER_TOKEN": testToken}, &Request{Headers: []Header{
			{Name: "Authorization", Value: "Bearer ${secret:PARTNER_TOKEN}", Hosts: []string{"*.example.com"}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			e := newFetchEnv(t, 0)
			e.f.Secrets = tc.secrets
			it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: tc.req})[0]
			if it.Outcome != OutcomeError || !strings.Contains(it.Error, "may not be sent to 127.0.0.1") || strings.Contains(it.Error, testToken) {
				t.Errorf("item %+v, want refused for its host", it)
			}
		})
	}
	if n := len(log.all()); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
	// In scope, it goes.
	e := newFetchEnv(t, 0)
	e.f.Secrets = scopedSecrets{mapSecrets{"PARTNER_TOKEN": testToken}, []string{"127.0.0.1"}}
	if it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: bearer()})[0]; it.Status != 200 {
		t.Errorf("in scope: %+v", it)
	}
}

func TestARedirectToAnotherOriginDropsCredentials(t *testing.T) {
	var other seenLog
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.record(r)
		_, _ = io.WriteString(w, "elsewhere")
	}))
	defer elsewhere.Close()
	var first seenLog
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.record(r)
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, elsewhere.URL+"/landed", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/final", http.StatusFound)
		default:
			fmt.Fprint(w, r.Header.Get("Authorization"))
		}
	}))
	defer origin.Close()
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken, "KEY": "k-77"}
	req := &Request{Headers: []Header{
		{Name: "Authorization", Value: "Bearer ${secret:PARTNER_TOKEN}"},
		{Name: "X-Api-Key", Value: "${secret:KEY}"},
		{Name: "Cookie", Value: "session=plain"},
		{Name: "X-Trace", Value: "t1"},
	}}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(origin.URL+"/away", origin.URL+"/here"), Concurrency: 1, Policy: quick, Request: req})
	for _, it := range items {
		if it.Status != 200 {
			t.Errorf("item %+v", it)
		}
	}
	got := other.all()
	if len(got) != 1 {
		t.Fatalf("the other origin saw %d requests", len(got))
	}
	for _, h := range []string{"Authorization", "X-Api-Key", "Cookie"} {
		if v := got[0].header.Get(h); v != "" {
			t.Errorf("the other origin got %s: %q", h, v)
		}
	}
	if got[0].header.Get("X-Trace") != "t1" {
		t.Errorf("a header without credentials was dropped too: %v", got[0].header)
	}
	// A redirect within the origin keeps them.
	for _, r := range first.all() {
		if r.path == "/final" && r.header.Get("Authorization") != "Bearer "+testToken {
			t.Errorf("a same-origin redirect lost the token")
		}
	}
}

func TestAHeadRequestHasNoBodyAndNoHash(t *testing.T) {
	var log seenLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"e1"`)
		_, _ = io.WriteString(w, "a body a HEAD must not get")
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/h"), Concurrency: 1, Policy: quick, Request: &Request{Method: http.MethodHead}})
	if it := items[0]; !it.NoBody || it.Blob != "" || it.Outcome != "" {
		t.Fatalf("item %+v, want no body", it)
	}
	v, err := e.env.ExecuteActivity(e.h.HashChunk, HashChunkRequest{Prefix: "batches/r", Items: items})
	if err != nil {
		t.Fatal(err)
	}
	var hr HashChunkResult
	_ = v.Get(&hr)
	r := hr.Results[0]
	if r.Outcome != OutcomeOK || r.SHA256 != "" || r.Size != 0 || r.Status != 200 || r.ETag != `"e1"` || r.ContentType != "text/plain" {
		t.Errorf("result %+v, want ok without sha256, with its headers", r)
	}
	if got := log.all(); len(got) != 1 || got[0].method != http.MethodHead {
		t.Errorf("server saw %+v", got)
	}
}

// flaky answers 503 to the first request of each path, then 200.
func flaky(t *testing.T, log *seenLog) *httptest.Server {
	var mu sync.Mutex
	tries := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := log.record(r)
		mu.Lock()
		tries[r.URL.Path]++
		n := tries[r.URL.Path]
		mu.Unlock()
		if n == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s %s", sr.method, sr.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAPostIsRetriedOnlyWhenTheBatchSaysItMayBe(t *testing.T) {
	var log seenLog
	srv := flaky(t, &log)
	e := newFetchEnv(t, 0)
	post := func(path string, r *Request) Fetched {
		return e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + path), Concurrency: 1, Policy: quick, Request: r})[0]
	}
	if it := post("/once", &Request{Method: http.MethodPost, Body: &Body{Text: `{"q":1}`}}); it.Outcome != OutcomeHTTPError || it.Attempts != 1 {
		t.Errorf("a POST: %+v, want one attempt", it)
	}
	if it := post("/allowed", &Request{Method: http.MethodPost, Body: &Body{Text: `{"q":2}`}, RetryUnsafe: true}); it.Status != 200 || it.Attempts != 2 {
		t.Errorf("retry_non_idempotent: %+v, want two attempts", it)
	}
	if it := post("/keyed", &Request{Method: http.MethodPost, Body: &Body{Text: `{"q":3}`}, Headers: []Header{{Name: "Idempotency-Key", Value: "k-1"}}}); it.Status != 200 || it.Attempts != 2 {
		t.Errorf("Idempotency-Key: %+v, want two attempts", it)
	}
	if it := post("/put", &Request{Method: http.MethodPut, Body: &Body{Text: "v"}}); it.Status != 200 || it.Attempts != 2 {
		t.Errorf("a PUT: %+v, want two attempts", it)
	}
	keys := 0
	for _, r := range log.all() {
		if r.path == "/keyed" {
			if r.header.Get("Idempotency-Key") != "k-1" || r.body != `{"q":3}` || r.method != http.MethodPost {
				t.Errorf("keyed attempt %+v", r)
			}
			keys++
		}
	}
	if keys != 2 {
		t.Errorf("%d keyed attempts", keys)
	}
}

func TestAPostCutOffWithItsWorkerIsNotMadeAgain(t *testing.T) {
	var log seenLog
	srv := flaky(t, &log)
	e := newFetchEnv(t, 0)
	// The chunk's last attempt had begun the URL's first attempt.
	e.env.SetHeartbeatDetails(FetchCheckpoint{Running: map[int]inFlight{0: {Attempts: 1}}})
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/p"), Concurrency: 1, Policy: quick,
		Request: &Request{Method: http.MethodPost, Body: &Body{Text: "x"}}})[0]
	if it.Outcome != OutcomeError || !strings.Contains(it.Error, "not retried") {
		t.Errorf("item %+v, want it not made again", it)
	}
	if n := len(log.all()); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
}

func TestABodyFromTheBlobStore(t *testing.T) {
	var log seenLog
	srv := tokenServer(t, &log)
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken}
	w, _ := e.store.Create(context.Background(), "inputs/query.json")
	big := strings.Repeat("q", 200<<10)
	_, _ = io.WriteString(w, big)
	_ = w.Commit()
	r := bearer()
	r.Method, r.Body = http.MethodPost, &Body{Key: "inputs/query.json"}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/q"), Concurrency: 1, Policy: quick, Request: r})
	if items[0].Status != 200 {
		t.Errorf("item %+v", items[0])
	}
	if got := log.all(); len(got) != 1 || got[0].body != big || got[0].header.Get("Content-Length") != fmt.Sprint(len(big)) {
		t.Errorf("server saw %d requests", len(got))
	}
	missing := &Request{Method: http.MethodPost, Body: &Body{Key: "inputs/none.json"}}
	it := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/q"), Concurrency: 1, Policy: quick, Request: missing})[0]
	if it.Outcome != OutcomeError || !strings.Contains(it.Error, "inputs/none.json") {
		t.Errorf("a missing body: %+v", it)
	}
}

func TestAURLsOwnHeadersWinOverTheBatchs(t *testing.T) {
	var log seenLog
	srv := tokenServer(t, &log)
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken, "OTHER_TOKEN": "other"}
	tasks := chunkOf(srv.URL+"/batch", srv.URL+"/own")
	tasks[1].R = &Request{Headers: []Header{{Name: "authorization", Value: "Bearer ${secret:OTHER_TOKEN}"}}}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: tasks, Concurrency: 1, Policy: quick, Request: bearer()})
	if items[0].Status != 200 || items[1].Status != 401 {
		t.Errorf("items %+v", items)
	}
	for _, r := range log.all() {
		if r.path == "/own" && (r.header.Get("Authorization") != "Bearer other" || r.header.Get("X-Trace") != "t1") {
			t.Errorf("own URL sent %v", r.header)
		}
	}
}

func TestStagedChunksKeepEachURLsRequest(t *testing.T) {
	e := newFetchEnv(t, 0)
	ctx := context.Background()
	w, _ := e.store.Create(ctx, "inputs/list.jsonl")
	fmt.Fprint(w, "http://a.example/0\n{\"url\": \"http://a.example/1\", \"headers\": {\"Authorization\": {\"secret\": \"T\"}}, \"method\": \"POST\", \"body\": \"b\"}\n")
	_ = w.Commit()
	v, err := e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/r", URLsFile: "inputs/list.jsonl", ChunkSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	var st StageResult
	_ = v.Get(&st)
	tasks, err := readURLs(ctx, e.store, URLsKey("batches/r", 0), 0)
	if err != nil || st.Count != 2 || len(tasks) != 2 {
		t.Fatalf("staged %+v, tasks %+v, %v", st, tasks, err)
	}
	if tasks[0].R != nil || tasks[1].URL != "http://a.example/1" || tasks[1].R == nil || tasks[1].R.Method != "POST" ||
		tasks[1].R.Headers[0].Value != "${secret:T}" || tasks[1].R.Body.Text != "b" {
		t.Errorf("tasks %+v %+v", tasks[0], tasks[1].R)
	}
	// A line that does not say how to ask for its URL fails the batch, naming it.
	w, _ = e.store.Create(ctx, "inputs/bad.jsonl")
	fmt.Fprint(w, "http://a.example/0\n{\"url\": \"http://a.example/1\", \"headers\": {\"Host\": \"x\"}}\n")
	_ = w.Commit()
	_, err = e.env.ExecuteActivity(e.f.StageURLs, StageRequest{Prefix: "batches/s", URLsFile: "inputs/bad.jsonl", ChunkSize: 10})
	if err == nil || !strings.Contains(err.Error(), "urls_file line 2") || !strings.Contains(err.Error(), "Host") {
		t.Errorf("err = %v, want it to name line 2 and Host", err)
	}
}

func TestCheckRequestRefusesWhatTheFetcherOwns(t *testing.T) {
	for _, name := range []string{"Host", "content-length", "Range", "Connection", "Transfer-Encoding", "If-None-Match", "Proxy-Authorization"} {
		err := CheckRequest(&Request{Headers: []Header{{Name: name, Value: "x"}}})
		if err == nil || !strings.Contains(err.Error(), "headers: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for _, bad := range []*Request{
		{Method: "DELETE"},
		{Headers: []Header{{Name: "X", Value: "a\r\nB: c"}}},
		{Headers: []Header{{Name: "bad name", Value: "x"}}},
		{Headers: []Header{{Name: "X", Value: "${secret:1BAD}"}}},
		{Headers: []Header{{Name: "X", Value: "${secret PARTNER}"}}},
		{Headers: []Header{{Name: "X", Value: "plain", Hosts: []string{"a.example"}}}},
		{Headers: []Header{{Name: "X", Value: "a"}, {Name: "x", Value: "b"}}},
		{Body: &Body{Text: strings.Repeat("b", MaxBodyText+1)}},
	} {
		if err := CheckRequest(bad); err == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	if err := CheckMerged(&Request{Body: &Body{Text: "x"}}); err == nil || !strings.Contains(err.Error(), "GET") {
		t.Errorf("a GET with a body: %v", err)
	}
	if err := CheckRequest(bearer()); err != nil {
		t.Errorf("bearer: %v", err)
	}
}

// A download cut off resumes with the URL's headers, and a URL with
// earlier results is asked for only if it changed, with them too.
func TestResumeAndConditionalRequestsKeepTheHeaders(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16) // 2 MiB
	var log seenLog
	var mu sync.Mutex
	cut := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := log.record(r)
		if sr.header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		mu.Lock()
		first := !cut && r.URL.Path == "/big"
		cut = cut || first
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body[:1<<20])
			w.(http.Flusher).Flush()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken}
	tasks := chunkOf(srv.URL+"/big", srv.URL+"/same")
	tasks[1].Prev = &Prev{ETag: `"v1"`, SHA256: strings.Repeat("a", 64), Size: int64(len(body))}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: tasks, Concurrency: 1, Policy: quick, Request: bearer()})
	if it := items[0]; it.Outcome != "" || it.Size != int64(len(body)) || it.Attempts != 2 {
		t.Errorf("the cut-off body: %+v, want it whole after 2 attempts", it)
	}
	if it := items[1]; !it.NotModified || it.Status != http.StatusNotModified {
		t.Errorf("the unchanged URL: %+v, want a 304", it)
	}
	var resumed, conditional bool
	for _, r := range log.all() {
		resumed = resumed || r.path == "/big" && r.header.Get("Range") == "bytes=1048576-" && r.header.Get("Authorization") != ""
		conditional = conditional || r.path == "/same" && r.header.Get("If-None-Match") == `"v1"` && r.header.Get("Authorization") != ""
	}
	if !resumed || !conditional {
		t.Errorf("resumed with the token: %v; conditional with the token: %v", resumed, conditional)
	}
}

// A one-URL activity of a POST that may not be retried, after an earlier
// activity's attempt was lost with its worker, sends nothing.
func TestAPostsURLActivityAfterALostAttemptSendsNothing(t *testing.T) {
	var log seenLog
	srv := flaky(t, &log)
	e := newFetchEnv(t, 0)
	_, err := e.env.ExecuteActivity(e.f.FetchURL, FetchURLRequest{Prefix: "batches/r", Task: URLTask{URL: srv.URL + "/p"}, Policy: quick,
		PriorAttempts: 1, Request: &Request{Method: http.MethodPost, Body: &Body{Text: "x"}}})
	if err == nil || !strings.Contains(err.Error(), "not retried") {
		t.Errorf("err = %v, want a final error saying the POST is not made again", err)
	}
	if n := len(log.all()); n != 0 {
		t.Errorf("the server got %d requests", n)
	}
}

func TestAURLWithASpaceIsRefused(t *testing.T) {
	for _, u := range []string{"https://a.example/a b", "https://a.example/\tx", "https://a.example/x?q=a b"} {
		if err := CheckURL(u); err == nil || !strings.Contains(err.Error(), "%20") {
			t.Errorf("CheckURL(%q) = %v, want it refused with a hint", u, err)
		}
	}
	if err := CheckURL("https://a.example/a%20b"); err != nil {
		t.Errorf("an encoded space: %v", err)
	}
}

// A server that echoes the token in the response headers a result and a
// checkpoint keep (ETag, Content-Type): they are dropped, so the token is
// in neither (a checkpoint would hold the ETag to resume on, and a
// range would be asked for), and a download cut off is fetched again
// whole.
func TestResponseHeadersEchoingASecretAreNotKept(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 2<<20/16) // 2 MiB
	var log seenLog
	var mu sync.Mutex
	cut := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sr := log.record(r)
		w.Header().Set("ETag", `"`+strings.TrimPrefix(sr.header.Get("Authorization"), "Bearer ")+`"`)
		w.Header().Set("Content-Type", "text/plain; for="+testToken)
		mu.Lock()
		first := !cut
		cut = true
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			_, _ = w.Write(body[:1<<20])
			w.(http.Flusher).Flush()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	e := newFetchEnv(t, 0)
	e.f.Secrets = mapSecrets{"PARTNER_TOKEN": testToken}
	items := e.fetch(t, FetchChunkRequest{Prefix: "batches/r", URLs: chunkOf(srv.URL + "/echo"), Concurrency: 1, Policy: quick, Request: bearer()})
	it := items[0]
	if it.Outcome != "" || it.Size != int64(len(body)) || it.Attempts != 2 || it.ETag != "" || it.ContentType != "" {
		t.Errorf("%+v, want the whole body on the second attempt, without the echoing ETag and Content-Type", it)
	}
	for _, r := range log.all() {
		if r.header.Get("Range") != "" || r.header.Get("If-Range") != "" {
			t.Errorf("a range was asked for on the echoing ETag: %v", r.header)
		}
	}
	if b, _ := json.Marshal(items); strings.Contains(string(b), testToken) {
		t.Errorf("the result holds the token: %s", b)
	}
}

// The User-Agent is batchfetch/<build> unless the worker is given another
// (--user-agent), and a batch's own User-Agent header wins over both.
func TestTheUserAgentIsTheWorkersUnlessTheBatchGivesOne(t *testing.T) {
	var log seenLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.record(r)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	own := &Request{Headers: []Header{{Name: "User-Agent", Value: "nightly/2"}}}
	for _, tc := range []struct {
		configured string
		req        *Request
		want       string
	}{
		{"", nil, "batchfetch/" + buildinfo.ID()},
		{"acme-crawler/3 (+https://acme.example/bot)", nil, "acme-crawler/3 (+https://acme.example/bot)"},
		{"acme-crawler/3", own, "nightly/2"},
	} {
		client, err := NewHTTPClient(ClientConfig{Guard: Guard{Allow: []string{"127.0.0.1"}}, UserAgent: tc.configured})
		if err != nil {
			t.Fatal(err)
		}
		e := newFetchEnv(t, 0)
		e.f.Client = client
		before := len(log.all())
		items := e.fetch(t, FetchChunkRequest{Prefix: "batches/ua", URLs: chunkOf(srv.URL + "/ua"), Concurrency: 1, Policy: quick, Request: tc.req})
		client.CloseIdleConnections()
		got := log.all()
		if items[0].Outcome != "" || len(got) != before+1 || got[before].header.Get("User-Agent") != tc.want {
			t.Errorf("configured %q, batch %+v: the server saw %v, want User-Agent %q", tc.configured, tc.req, got[before:], tc.want)
		}
	}
}
