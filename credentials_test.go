package batchfetch_test

import (
	"bytes"
	"context"
	"encoding/json"
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

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/logging"
	"github.com/batchfetch/batchfetch/internal/workers"
	"github.com/batchfetch/batchfetch/workflows"
)

// The token a partner's API demands; the fetch worker holds it as the
// secret PARTNER_TOKEN, and it must appear nowhere else.
const partnerToken = "pt-8d41c0f2e97a4b35a6"

// syncBuffer is a log the workers write to from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type envSecrets map[string]string

func (e envSecrets) Secret(name string) (string, []string, bool, error) {
	v, ok := e[name]
	return v, nil, ok, nil
}
func (e envSecrets) Where(name string) string { return "BATCHFETCH_SECRET_" + name }

// partnerAPI answers only requests with the token, and logs every header
// it sees; /moved redirects to other, another origin.
type partnerAPI struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
	slow    chan struct{} // /slow waits for it to close
	arrived chan struct{}
}

func newPartnerAPI(t *testing.T, other string) *partnerAPI {
	p := &partnerAPI{slow: make(chan struct{}), arrived: make(chan struct{}, 1)}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.headers = append(p.headers, r.Header.Clone())
		p.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+partnerToken {
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, other+"/landed", http.StatusFound)
			return
		case "/slow":
			select {
			case p.arrived <- struct{}{}:
			default:
			}
			<-p.slow
		}
		fmt.Fprintf(w, "data for %s", r.URL.Path)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *partnerAPI) seen() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.headers...)
}

func TestATokenFromTheWorkersSecretsIsSentAndNeverStored(t *testing.T) {
	var otherSeen []http.Header
	var otherMu sync.Mutex
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherMu.Lock()
		otherSeen = append(otherSeen, r.Header.Clone())
		otherMu.Unlock()
		if r.Header.Get("Authorization") == "" {
			http.Error(w, "token required", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, "leaked")
	}))
	defer other.Close()
	api := newPartnerAPI(t, other.URL)

	// A fetch worker of its own queue holds the secret, logging at debug.
	var log syncBuffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&log), zap.DebugLevel))
	c, err := client.NewClientFromExisting(env.client, client.Options{Logger: logging.SDK(logger)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const queue = "e2e-credentials"
	pool, err := workers.Start(c, workers.Config{Role: workers.RoleFetch, TaskQueue: queue, CPUTaskQueue: cpuTaskQueue, Store: env.store,
		HTTP: local, Secrets: envSecrets{"PARTNER_TOKEN": partnerToken}, Deployment: workers.Deployment{MakeCurrent: workers.MakeCurrentAlways}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()

	auth := map[string]activities.HeaderValue{"Authorization": {Value: "Bearer ${secret:PARTNER_TOKEN}"}, "Accept": {Value: "application/json"}}
	missing := &activities.RequestFields{Headers: map[string]activities.HeaderValue{"Authorization": {Secret: "NOT_ON_ANY_WORKER"}}}
	small := workflows.Input{URLs: []string{api.URL + "/a", api.URL + "/moved", api.URL + "/b", api.URL + "/slow"}, CPUTaskQueue: cpuTaskQueue,
		URLRequests: []*activities.RequestFields{nil, nil, missing, nil}}
	small.Headers = auth
	run := startOn(t, queue, small)
	select {
	case <-api.arrived:
	case <-time.After(time.Minute):
		t.Fatal("the slow URL was never asked for")
	}
	pending := pendingDetails(t, run)
	close(api.slow)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{0: workflows.OutcomeOK, 1: workflows.OutcomeHTTPError, 2: workflows.OutcomeError, 3: workflows.OutcomeOK}
	for i, o := range want {
		if got := out.Results[i]; got.Outcome != o {
			t.Errorf("result %d: %+v, want %s", i, got, o)
		}
	}
	if r := out.Results[1]; r.Status != http.StatusUnauthorized {
		t.Errorf("the redirect to another origin: %+v, want the 401 of a request without the token", r)
	}
	if r := out.Results[2]; !strings.Contains(r.Error, "NOT_ON_ANY_WORKER") || !strings.Contains(r.Error, "fetch worker") {
		t.Errorf("the missing secret: %q, want it named with the worker", r.Error)
	}
	otherMu.Lock()
	for _, h := range otherSeen {
		if h.Get("Authorization") != "" {
			t.Errorf("the other origin got the Authorization header")
		}
	}
	otherMu.Unlock()
	var withToken int
	for _, h := range api.seen() {
		if h.Get("Authorization") == "Bearer "+partnerToken {
			withToken++
		}
	}
	if withToken < 3 {
		t.Errorf("the API got the token %d times, want at least 3", withToken)
	}

	// A staged batch: URLs in chunk files, results in a file.
	var big workflows.Input
	for i := range 1100 {
		big.URLs = append(big.URLs, fmt.Sprintf("%s/page/%d", api.URL, i))
	}
	big.Headers, big.CPUTaskQueue = auth, cpuTaskQueue
	bigRun := startOn(t, queue, big)
	bigOut, err := result(t, bigRun)
	if err != nil || bigOut.OK != 1100 || bigOut.ResultsFile == "" {
		t.Fatalf("staged batch: %+v, %v", bigOut, err)
	}
	results, err := os.ReadFile(filepath.Join(env.blobDir, filepath.FromSlash(bigOut.ResultsFile)))
	if err != nil {
		t.Fatal(err)
	}

	// Where the token must not be.
	places := map[string]string{
		"the small batch's history":       historyText(t, run),
		"the staged batch's history":      historyText(t, bigRun),
		"a pending activity's heartbeat":  pending,
		"the small batch's output":        mustJSON(t, out),
		"the staged batch's results file": string(results),
		"the fetch worker's log":          log.String(),
		"the blob store":                  storeText(t),
	}
	if log.String() == "" {
		t.Error("the worker logged nothing: the log is not where the test looks")
	}
	for where, text := range places {
		if strings.Contains(text, partnerToken) {
			t.Errorf("the token is in %s", where)
		}
	}
	if !strings.Contains(places["the small batch's history"], "${secret:PARTNER_TOKEN}") {
		t.Error("the history does not hold the secret's reference: the test looks in the wrong place")
	}
}

func startOn(t *testing.T, queue string, in workflows.Input) client.WorkflowRun {
	t.Helper()
	run, err := env.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano()), TaskQueue: queue,
	}, workflows.WorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// pendingDetails is what the server shows of the run's pending
// activities (the Web UI's pending activities), once one has heartbeat.
func pendingDetails(t *testing.T, run client.WorkflowRun) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		d, err := env.client.DescribeWorkflowExecution(context.Background(), run.GetID(), run.GetRunID())
		if err != nil {
			t.Fatal(err)
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetHeartbeatDetails() != nil {
				b, _ := protojson.Marshal(d)
				return string(b)
			}
		}
		time.Sleep(100 * time.Millisecond) // polling the server's view: nothing can signal it
	}
	t.Fatal("no pending activity heartbeat")
	return ""
}

func historyText(t *testing.T, run client.WorkflowRun) string {
	t.Helper()
	_, events := historyLength(t, run.GetID(), run.GetRunID())
	var sb strings.Builder
	for _, ev := range events {
		b, _ := protojson.Marshal(ev)
		sb.Write(b)
		// Payloads are base64 in protojson: their data, decoded, too.
		sb.WriteString(decodedPayloads(b))
	}
	return sb.String()
}

// decodedPayloads finds the "data" fields of payloads in a protojson
// event and returns them decoded.
func decodedPayloads(b []byte) string {
	var v any
	_ = json.Unmarshal(b, &v)
	var sb strings.Builder
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, y := range x {
				if s, ok := y.(string); ok && k == "data" {
					var raw []byte
					if json.Unmarshal([]byte(`"`+s+`"`), &raw) == nil {
						sb.Write(raw)
					}
				}
				walk(y)
			}
		case []any:
			for _, y := range x {
				walk(y)
			}
		}
	}
	walk(v)
	return sb.String()
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// storeText is every file of the blob store, concatenated.
func storeText(t *testing.T) string {
	var sb strings.Builder
	_ = filepath.WalkDir(env.blobDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			sb.Write(b)
		}
		return nil
	})
	return sb.String()
}

func TestMethodsThroughTheWorkflow(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	bodies := map[string][]string{}
	methods := map[string][]string{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		tries[r.URL.Path]++
		n := tries[r.URL.Path]
		bodies[r.URL.Path] = append(bodies[r.URL.Path], string(b))
		methods[r.URL.Path] = append(methods[r.URL.Path], r.Method)
		mu.Unlock()
		if n == 1 && r.URL.Path != "/head" {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"echo": %q}`, b)
	}))
	defer api.Close()
	post := &activities.RequestFields{Method: "POST", Body: &activities.BodyValue{Text: `{"q": "once"}`}}
	keyed := &activities.RequestFields{Method: "POST", Body: &activities.BodyValue{Text: `{"q": "keyed"}`},
		Headers: map[string]activities.HeaderValue{"Idempotency-Key": {Value: "k-42"}}}
	head := &activities.RequestFields{Method: "HEAD"}
	for _, n := range []int{3, 300} { // URL activities of their own; chunks of 3
		t.Run(fmt.Sprintf("%d URLs", n), func(t *testing.T) {
			mu.Lock()
			clear(tries)
			clear(bodies)
			clear(methods)
			mu.Unlock()
			in := workflows.Input{URLs: []string{api.URL + "/post", api.URL + "/keyed", api.URL + "/head"}, URLRequests: []*activities.RequestFields{post, keyed, head}}
			for i := 3; i < n; i++ {
				in.URLs = append(in.URLs, fmt.Sprintf("%s/get/%d", api.URL, i))
			}
			out, err := result(t, start(t, in))
			if err != nil {
				t.Fatal(err)
			}
			if r := out.Results[0]; r.Outcome != workflows.OutcomeHTTPError || r.Attempts != 1 {
				t.Errorf("a POST without leave to retry: %+v, want one attempt", r)
			}
			if r := out.Results[1]; r.Outcome != workflows.OutcomeOK || r.Attempts != 2 || r.SHA256 == "" {
				t.Errorf("a POST with an Idempotency-Key: %+v, want ok on the second attempt", r)
			}
			if r := out.Results[2]; r.Outcome != workflows.OutcomeOK || r.SHA256 != "" || r.Status != 200 || r.ContentType != "application/json" {
				t.Errorf("a HEAD: %+v, want ok with no sha256", r)
			}
			mu.Lock()
			defer mu.Unlock()
			if got := bodies["/keyed"]; len(got) != 2 || got[0] != `{"q": "keyed"}` || got[1] != got[0] {
				t.Errorf("the keyed POST's bodies: %q", got)
			}
			if got := methods["/head"]; len(got) != 1 || got[0] != "HEAD" {
				t.Errorf("the HEAD was sent as %q", got)
			}
			if n > 3 && out.Results[3].Attempts != 2 {
				t.Errorf("a GET: %+v, want it retried", out.Results[3])
			}
		})
	}
}

// forwardProxy is an HTTP proxy of the test's own on 127.0.0.1: it
// forwards absolute-form requests to loopback targets and records what it
// was asked.
type forwardProxy struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // target URL and Proxy-Authorization
}

func newForwardProxy(t *testing.T) *forwardProxy {
	p := &forwardProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.URL.String()+" "+r.Header.Get("Proxy-Authorization"))
		p.mu.Unlock()
		if r.URL.Hostname() != "127.0.0.1" { // a test proxy reaches loopback only
			http.Error(w, "not here", http.StatusForbidden)
			return
		}
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), r.Body)
		for k, v := range r.Header {
			if k != "Proxy-Authorization" && k != "Proxy-Connection" {
				out.Header[k] = v
			}
		}
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.Close)
	return p
}

func TestABatchThroughAProxyWithItsOwnCredentials(t *testing.T) {
	api := newPartnerAPI(t, "http://127.0.0.1:1")
	close(api.slow)
	proxy := newForwardProxy(t)
	secrets := envSecrets{"PARTNER_TOKEN": partnerToken, "PROXY_AUTH": "squid:pr0xy-pw"}
	cfg := local
	cfg.Proxy, cfg.ProxySecret, cfg.Secrets = proxy.URL, "PROXY_AUTH", secrets
	const queue = "e2e-proxy"
	pool, err := workers.Start(env.client, workers.Config{Role: workers.RoleFetch, TaskQueue: queue, CPUTaskQueue: cpuTaskQueue, Store: env.store,
		HTTP: cfg, Secrets: secrets, Deployment: workers.Deployment{MakeCurrent: workers.MakeCurrentAlways}})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Stop()
	// 127.0.0.2 stands for an internal address the guard refuses: the
	// request must not reach the proxy.
	in := workflows.Input{URLs: []string{api.URL + "/a", "http://127.0.0.2:9/internal"}, CPUTaskQueue: cpuTaskQueue}
	in.Headers = map[string]activities.HeaderValue{"Authorization": {Value: "Bearer ${secret:PARTNER_TOKEN}"}}
	run := startOn(t, queue, in)
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Results[0]; r.Outcome != workflows.OutcomeOK {
		t.Errorf("through the proxy: %+v", r)
	}
	if r := out.Results[1]; r.Outcome != workflows.OutcomeError || !strings.Contains(r.Error, "refusing") {
		t.Errorf("an internal target through the proxy: %+v, want it refused", r)
	}
	proxy.mu.Lock()
	seen := append([]string(nil), proxy.seen...)
	proxy.mu.Unlock()
	wantAuth := "Basic c3F1aWQ6cHIweHktcHc=" // squid:pr0xy-pw
	if len(seen) != 1 || !strings.HasPrefix(seen[0], api.URL+"/a ") || !strings.HasSuffix(seen[0], wantAuth) {
		t.Errorf("the proxy saw %q, want the API's URL once, with the proxy's credentials", seen)
	}
	for _, h := range api.seen() {
		if h.Get("Proxy-Authorization") != "" {
			t.Error("the proxy's credentials reached the API")
		}
	}
	text := historyText(t, run)
	for _, secret := range []string{partnerToken, "pr0xy-pw", "c3F1aWQ6cHIweHktcHc"} {
		if strings.Contains(text, secret) {
			t.Errorf("%q is in the history", secret)
		}
	}
}
