package crashtest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/workflows"
)

// The token the partner's API demands: the fetch worker binary holds it as
// BATCHFETCH_SECRET_PARTNER_TOKEN; the SOCKS5 proxy's password is the
// secret PROXY_AUTH. Neither may appear anywhere a user can look.
const (
	binToken     = "pt-bin-7c1e04d9a5f2b86e3d"
	binProxyPass = "s0cks-pw-4b9e2a17"
)

// starterBin builds the starter into bin, once.
var starterBin = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "starter"), "../../starter").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the starter: %v\n%s", err, out)
	}
	return filepath.Join(bin, "starter"), nil
})

// tokenAPI answers only requests with the token (as "Authorization:
// Bearer" or "X-Api-Key") and logs every header it sees, as does other, a
// second origin /moved redirects to.
type tokenAPI struct {
	*httptest.Server
	other   *httptest.Server
	mu      sync.Mutex
	seen    []string // "api|other PATH" and the headers, one line each
	cut     bool     // /big was cut off once
	slow    chan struct{}
	arrived chan struct{}
}

var bigBody = bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16) // 3 MiB

func newTokenAPI(t *testing.T) *tokenAPI {
	a := &tokenAPI{slow: make(chan struct{}), arrived: make(chan struct{}, 1)}
	a.other = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.record("other", r)
		_, _ = io.WriteString(w, "landed")
	}))
	t.Cleanup(a.other.Close)
	a.Server = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.Close)
	return a
}

func (a *tokenAPI) record(who string, r *http.Request) {
	var sb strings.Builder
	_ = r.Header.Write(&sb)
	a.mu.Lock()
	a.seen = append(a.seen, who+" "+r.URL.Path+"\n"+sb.String())
	a.mu.Unlock()
}

func (a *tokenAPI) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

func (a *tokenAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.record("api", r)
	if r.Header.Get("Authorization") != "Bearer "+binToken && r.Header.Get("X-Api-Key") != binToken {
		http.Error(w, "token required", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case "/moved":
		http.Redirect(w, r, a.other.URL+"/landed", http.StatusFound)
	case "/reason": // a server that puts the token in its reason phrase
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			fmt.Fprintf(conn, "HTTP/1.1 403 no entry for Bearer %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", binToken)
			conn.Close()
		}
	case "/slow":
		select {
		case a.arrived <- struct{}{}:
		default:
		}
		<-a.slow
		_, _ = io.WriteString(w, "slow data")
	case "/big", "/etag":
		w.Header().Set("ETag", `"`+r.URL.Path[1:]+`-1"`)
		a.mu.Lock()
		first := !a.cut && r.URL.Path == "/big"
		a.cut = a.cut || first
		a.mu.Unlock()
		if first { // cut off after 1 MiB: the next attempt resumes
			w.Header().Set("Content-Length", fmt.Sprint(len(bigBody)))
			_, _ = w.Write(bigBody[:1<<20])
			_ = http.NewResponseController(w).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bigBody))
	default:
		fmt.Fprintf(w, "data for %s", r.URL.Path)
	}
}

// looked is every place a user (or the Web UI) can look, by name.
type looked map[string]string

// add keeps text, and for JSON text every string in it that decodes from
// base64 (payloads' data, as the Web UI's API gives them), decoded.
func (l looked) add(where, text string) {
	l[where] = text + "\n" + decodedStrings(text)
}

func decodedStrings(text string) string {
	var sb strings.Builder
	dec := json.NewDecoder(strings.NewReader(text))
	for {
		tok, err := dec.Token()
		if err != nil {
			return sb.String()
		}
		if s, ok := tok.(string); ok {
			if b, err := base64.StdEncoding.DecodeString(s); err == nil {
				sb.Write(b)
				sb.WriteByte('\n')
			}
		}
	}
}

// uiGet is a GET of the Web UI's own HTTP API, as the browser makes it.
func uiGet(t *testing.T, ui, path string) string {
	t.Helper()
	resp, err := http.Get(ui + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the Web UI's API %s: %s\n%.500s", path, resp.Status, b)
	}
	return string(b)
}

// uiWorkflow is what the Web UI shows of a workflow: its page (describe,
// with pending activities and their heartbeats), its event history in both
// orders, every page of it, and its line in the list.
func uiWorkflow(t *testing.T, ui, id string, l looked) {
	base := "/api/v1/namespaces/default/workflows/" + url.PathEscape(id)
	l.add("the Web UI's page of "+id, uiGet(t, ui, base))
	for _, h := range []string{"/history", "/history-reverse"} {
		var all strings.Builder
		for token := ""; ; {
			page := uiGet(t, ui, base+h+"?next_page_token="+url.QueryEscape(token))
			all.WriteString(page)
			var p struct {
				NextPageToken string `json:"nextPageToken"`
			}
			if err := json.Unmarshal([]byte(page), &p); err != nil || p.NextPageToken == "" {
				break
			}
			token = p.NextPageToken
		}
		l.add("the Web UI's "+h[1:]+" of "+id, all.String())
	}
	l.add("the Web UI's list line of "+id, uiGet(t, ui, "/api/v1/namespaces/default/workflows?query="+url.QueryEscape(`WorkflowId="`+id+`"`)))
}

// uiQuery is the Web UI's Queries tab: a query of id through the Web UI's
// API, with the CSRF token the Web UI hands a browser.
func uiQuery(t *testing.T, ui, id, query string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.Get(ui + "/api/v1/settings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodPost, ui+"/api/v1/namespaces/default/workflows/"+url.PathEscape(id)+"/query/"+query,
		strings.NewReader(`{"query": {"queryType": "`+query+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	u, _ := url.Parse(ui)
	for _, c := range jar.Cookies(u) {
		if c.Name == "_csrf" {
			req.Header.Set("X-CSRF-Token", c.Value)
		}
	}
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the Web UI's query %s of %s: %s\n%.500s", query, id, resp.Status, b)
	}
	return string(b)
}

// uiPending waits until the Web UI shows a pending activity of id with
// heartbeat details, and returns that page.
func uiPending(t *testing.T, ui, id string) string {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		page := uiGet(t, ui, "/api/v1/namespaces/default/workflows/"+url.PathEscape(id))
		if strings.Contains(page, `"heartbeatDetails"`) {
			return page
		}
		time.Sleep(100 * time.Millisecond) // polling the Web UI's view: nothing can signal it
	}
	t.Fatal("the Web UI never showed a pending activity's heartbeat")
	return ""
}

func scrapeText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// filesText is every file under dir (or the file dir), concatenated.
func filesText(dir string) string {
	var sb strings.Builder
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			sb.Write(b)
		}
		return nil
	})
	return sb.String()
}

func readOutFile(t *testing.T, file string) []workflows.Result {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []workflows.Result
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r workflows.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, r)
	}
	return out
}

// starterRun is one run of the starter binary.
type starterRun struct {
	cmd    *exec.Cmd
	output output
	done   chan error
}

func startStarter(t *testing.T, env []string, args ...string) *starterRun {
	t.Helper()
	exe, err := starterBin()
	if err != nil {
		t.Fatal(err)
	}
	s := &starterRun{cmd: exec.Command(exe, args...), done: make(chan error, 1)}
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = &s.output, &s.output
	dieWithTest(s.cmd)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	return s
}

// wait waits for the starter to end; a batch with failed URLs ends it
// non-zero, which is not the test's failure.
func (s *starterRun) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		_ = s.cmd.Process.Kill()
		t.Fatalf("the starter did not end:\n%s", s.output.String())
	}
	return s.output.String()
}

func waitUI(t *testing.T, ui string) {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(ui + "/api/v1/namespaces/default")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Web UI at %s did not answer: %v", ui, err)
		}
		time.Sleep(100 * time.Millisecond) // waiting for the Web UI to come up
	}
}

// TestATokenTheWorkerBinaryHoldsIsNowhereUsersLook runs the binaries as
// users do, with the codec off: the dev server with its Web UI, a fetch
// worker holding BATCHFETCH_SECRET_PARTNER_TOKEN (debug log, metrics), a
// CPU worker, and the starter naming the secret (--header, --header-secret,
// a URL file with JSON lines, --previous). A server that demands the token
// gets it, also on a resumed Range request and a conditional one; a
// redirect to another origin drops it; a secret the worker lacks fails its
// URL only, as does a URL on a host outside the secret's --secret-hosts; then the same worker behind a SOCKS5 proxy of the test's own,
// its password a secret too. The token and the proxy's password are then
// searched for in what the Web UI's API shows (history, pending
// heartbeats, the list, the progress query), the logs of every process, both workers'
// metrics, the starter's output, the results files, the blob store and
// the server's database.
func TestATokenTheWorkerBinaryHoldsIsNowhereUsersLook(t *testing.T) {
	uiPort := freeport.Run(t, 1)
	ui := fmt.Sprintf("http://127.0.0.1:%d", uiPort)
	c := newServerWith(t, "--ui-port", fmt.Sprint(uiPort), "--log-level", "info")
	waitUI(t, ui)
	api := newTokenAPI(t)
	noCodec := []string{"BATCHFETCH_CODEC_KEYS=", "BATCHFETCH_CODEC_KEY_FILE="}
	base := append(append([]string{}, c.cpu.env...), noCodec...)
	fetchMetrics, cpuMetrics := fmt.Sprintf("127.0.0.1:%d", freeport.Run(t, 1)), fmt.Sprintf("127.0.0.1:%d", freeport.Run(t, 1))
	c.fetch.env = append(append([]string{}, base...), "BATCHFETCH_SECRET_PARTNER_TOKEN="+binToken)
	c.fetch.args = append(c.fetch.args, "--log-level", "debug", "--metrics-listen", fetchMetrics, "--secret-hosts", "PARTNER_TOKEN=127.0.0.1")
	c.cpu.env = base
	c.cpu.args = append(c.cpu.args, "--log-level", "debug", "--metrics-listen", cpuMetrics)
	c.fetch.start()
	c.cpu.start()
	l := looked{}
	dir := t.TempDir()

	// The first batch: the token in a header of the batch, and per URL.
	list := filepath.Join(dir, "urls.txt")
	var lines strings.Builder
	for _, p := range []string{"/a", "/moved", "/big", "/etag", "/reason", "/slow"} {
		lines.WriteString(api.URL + p + "\n")
	}
	fmt.Fprintf(&lines, `{"url": %q, "headers": {"X-Api-Key": {"secret": "PARTNER_TOKEN"}}}`+"\n", api.URL+"/own")
	fmt.Fprintf(&lines, `{"url": %q, "headers": {"Authorization": "Bearer ${secret:NOT_ON_THIS_WORKER}"}}`+"\n", api.URL+"/missing")
	lines.WriteString("http://127.0.0.2:9/out-of-scope\n") // --secret-hosts PARTNER_TOKEN=127.0.0.1
	if err := os.WriteFile(list, []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out1 := filepath.Join(dir, "first.jsonl")
	first := startStarter(t, base, "--id", "cred-first", "--blob-dir", c.blobDir, "--out", out1,
		"--header", "Authorization: Bearer ${secret:PARTNER_TOKEN}", "--header", "X-Trace: t-1", "--file", list)
	select {
	case <-api.arrived:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the slow URL was never asked for:\n%s", first.output.String())
	}
	l.add("the Web UI's page of cred-first with a pending heartbeat", uiPending(t, ui, "cred-first"))
	close(api.slow)
	l.add("the starter's output (first batch)", first.wait(t))
	res := readOutFile(t, out1)
	l.add("the first batch's results file", filesText(out1))
	checkFirstBatch(t, api, res)
	l.add("the Web UI's progress query of cred-first", uiQuery(t, ui, "cred-first", "progress"))

	// The second batch: conditional requests, with the token.
	out2 := filepath.Join(dir, "second.jsonl")
	l.add("the starter's output (second batch)", startStarter(t, base, "--id", "cred-second", "--blob-dir", c.blobDir, "--out", out2,
		"--previous", out1, "--header-secret", "X-Api-Key=PARTNER_TOKEN", api.URL+"/etag", api.URL+"/big").wait(t))
	l.add("the second batch's results file", filesText(out2))
	for _, r := range readOutFile(t, out2) {
		if r.Outcome != workflows.OutcomeNotModified {
			t.Errorf("with --previous: %+v, want not_modified", r)
		}
	}
	for _, p := range []string{"/etag", "/big"} {
		if !api.saw(p, "If-None-Match: \"", "X-Api-Key: "+binToken) {
			t.Errorf("no conditional request for %s carrying the token", p)
		}
	}
	l.add("the fetch worker's metrics", scrapeText(t, fetchMetrics))
	l.add("the CPU worker's metrics", scrapeText(t, cpuMetrics))
	c.fetch.stop()
	l.add("the fetch worker's log", c.fetch.out.String())

	// The third batch, through SOCKS5.
	socks := throughSOCKS5(t, c, api, base, l)
	l.add("the fetch worker's metrics behind the proxy", scrapeText(t, fetchMetrics))
	c.fetch.stop()
	c.cpu.stop()
	l.add("the fetch worker's log behind the proxy", c.fetch.out.String())
	l.add("the CPU worker's log", c.cpu.out.String())
	for _, id := range []string{"cred-first", "cred-second", socks} {
		uiWorkflow(t, ui, id, l)
	}
	l.add("the blob store", filesText(c.blobDir))
	db, _ := filepath.Glob(c.server.args[1] + "*")
	var dbText strings.Builder
	for _, f := range db {
		dbText.WriteString(filesText(f))
	}
	l.add("the server's database", dbText.String())
	c.server.stop()
	l.add("the dev server's log", c.server.out.String())
	checkLooked(t, l)
}

// checkFirstBatch checks what the first batch's URLs got, as the server
// saw them and as the results say.
func checkFirstBatch(t *testing.T, api *tokenAPI, res []workflows.Result) {
	t.Helper()
	want := []string{workflows.OutcomeOK, workflows.OutcomeOK, workflows.OutcomeOK, workflows.OutcomeOK,
		workflows.OutcomeHTTPError, workflows.OutcomeOK, workflows.OutcomeOK, workflows.OutcomeError, workflows.OutcomeError}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(res), len(want), res)
	}
	for i, o := range want {
		if res[i].Outcome != o {
			t.Errorf("%s: %+v, want %s", res[i].URL, res[i], o)
		}
	}
	if r := res[2]; r.Size != int64(len(bigBody)) {
		t.Errorf("the cut-off download: %+v, want all %d bytes", r, len(bigBody))
	}
	if r := res[4]; r.Status != http.StatusForbidden || !strings.Contains(r.Error, "[secret]") {
		t.Errorf("a reason phrase holding the token: %+v, want a 403 whose error shows [secret] in its place", r)
	}
	if r := res[7]; !strings.Contains(r.Error, "NOT_ON_THIS_WORKER") || !strings.Contains(r.Error, "fetch worker") {
		t.Errorf("the secret the worker lacks: %q, want it named with the worker", r.Error)
	}
	if r := res[8]; !strings.Contains(r.Error, "PARTNER_TOKEN may not be sent to 127.0.0.2") || !strings.Contains(r.Error, "--secret-hosts") {
		t.Errorf("a URL outside the secret's hosts: %q, want it refused naming the secret and --secret-hosts", r.Error)
	}
	if !api.saw("/big", "Range: bytes=1048576-", "Authorization: Bearer "+binToken) {
		t.Error("the resumed download did not carry the token")
	}
	if !api.saw("/own", "X-Api-Key: "+binToken, "X-Trace: t-1") {
		t.Error("the URL's own header did not reach the server with the batch's")
	}
	if !api.saw("/a", "User-Agent: batchfetch/") {
		t.Error("no default User-Agent")
	}
	landed := false
	for _, r := range api.requests() {
		if strings.HasPrefix(r, "api /missing\n") {
			t.Error("the URL whose secret the worker lacks was sent")
		}
		if strings.HasPrefix(r, "other ") {
			landed = true
			if strings.Contains(r, "Authorization:") || strings.Contains(r, "X-Api-Key:") {
				t.Errorf("the redirect to another origin carried a credential:\n%s", r)
			}
		}
	}
	if !landed {
		t.Error("the redirect to another origin was not followed")
	}
}

// saw tells whether the API got a request for path with every one of the
// header lines (prefixes) given.
func (a *tokenAPI) saw(path string, lines ...string) bool {
	for _, r := range a.requests() {
		if !strings.HasPrefix(r, "api "+path+"\n") {
			continue
		}
		all := true
		for _, want := range lines {
			all = all && strings.Contains(r, "\n"+want)
		}
		if all {
			return true
		}
	}
	return false
}

// throughSOCKS5 restarts the fetch worker behind a SOCKS5 proxy whose
// password is the secret PROXY_AUTH, runs a batch through it and returns
// its ID.
func throughSOCKS5(t *testing.T, c *cluster, api *tokenAPI, base []string, l looked) string {
	t.Helper()
	socks := newSOCKS5(t, "carol", binProxyPass)
	c.fetch.env = append(c.fetch.env, "BATCHFETCH_SECRET_PROXY_AUTH=carol:"+binProxyPass)
	c.fetch.args = append(c.fetch.args, "--proxy", "socks5://"+socks.addr, "--proxy-secret", "PROXY_AUTH")
	c.fetch.start()
	const id = "cred-socks"
	dir := t.TempDir()
	out, list := filepath.Join(dir, "socks.jsonl"), filepath.Join(dir, "urls.txt")
	// 127.0.0.2 stands for an internal address the guard refuses: the
	// proxy must not hear of it.
	lines := fmt.Sprintf(`{"url": %q, "headers": {"X-Api-Key": "${secret:PARTNER_TOKEN}"}}`+"\nhttp://127.0.0.2:9/internal\n", api.URL+"/via-socks")
	if err := os.WriteFile(list, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	l.add("the starter's output (through SOCKS5)", startStarter(t, base, "--id", id, "--blob-dir", c.blobDir, "--out", out, "--file", list).wait(t))
	l.add("the results file through SOCKS5", filesText(out))
	res := readOutFile(t, out)
	if len(res) != 2 || res[0].Outcome != workflows.OutcomeOK || res[1].Outcome != workflows.OutcomeError || !strings.Contains(res[1].Error, "refusing") {
		t.Errorf("through SOCKS5: %+v, want the API ok and the internal address refused", res)
	}
	want := "carol:" + binProxyPass + " " + strings.TrimPrefix(api.URL, "http://")
	if got := socks.seen(); len(got) != 1 || got[0] != want {
		t.Errorf("the SOCKS5 proxy saw %q, want one CONNECT to the API with the secret's user and password", got)
	}
	if !api.saw("/via-socks", "X-Api-Key: "+binToken) {
		t.Error("the request through SOCKS5 did not carry the token")
	}
	return id
}

// checkLooked fails for every place holding the token or the proxy's
// password, after checking the places are what they seem.
func checkLooked(t *testing.T, l looked) {
	t.Helper()
	proxyBasic := base64.StdEncoding.EncodeToString([]byte("carol:" + binProxyPass))
	for where, text := range l {
		for _, secret := range []string{binToken, binProxyPass, proxyBasic} {
			if strings.Contains(text, secret) {
				i := strings.Index(text, secret)
				t.Errorf("%s holds %.6s...: %q", where, secret, text[max(0, i-200):i])
			}
		}
	}
	// The places are where the secrets would be: the codec is off (the
	// references are readable) and each place has what it should.
	for where, want := range map[string]string{
		"the Web UI's history of cred-first":                       "${secret:PARTNER_TOKEN}",
		"the Web UI's history-reverse of cred-second":              `"PARTNER_TOKEN"`,
		"the Web UI's page of cred-first with a pending heartbeat": `"heartbeatDetails"`,
		"the server's database":                                    "${secret:PARTNER_TOKEN}",
		"the fetch worker's log":                                   "PARTNER_TOKEN",
		"the fetch worker's log behind the proxy":                  "PROXY_AUTH",
		"the fetch worker's metrics":                               "batchfetch_fetch_bytes_total",
		"the CPU worker's metrics":                                 "batchfetch_hash_bytes_total",
		"the first batch's results file":                           "[secret]",
		"the Web UI's progress query of cred-first":                "[secret]", // recent_failures
	} {
		if !strings.Contains(l[where], want) {
			t.Errorf("%s does not hold %q: the test looks in the wrong place\n%.1000s", where, want, l[where])
		}
	}
}
