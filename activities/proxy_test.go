package activities

import (
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/sdk/testsuite"
	"golang.org/x/net/http/httpproxy"

	"github.com/batchfetch/batchfetch/blobstore"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func get(t *testing.T, p *proxies, raw string) *url.URL {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.proxy(req)
	if err != nil {
		t.Fatalf("proxy for %s: %v", raw, err)
	}
	return u
}

// Without --proxy, the environment decides, URL by URL; the proxy secret
// goes with whichever proxy is picked. No request is sent.
func TestProxyFromEnvironment(t *testing.T) {
	env := &httpproxy.Config{HTTPProxy: "http://plain.proxy.example:3128", HTTPSProxy: "socks5h://tls.proxy.example", NoProxy: "skip.example,.internal.example"}
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_PX=alice:pa:ss")
	p, err := newProxies(ClientConfig{ProxySecret: "PX", Secrets: store}, env)
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]string{
		"https://api.example.com/x":   "socks5h://alice:pa%3Ass@tls.proxy.example",
		"http://api.example.com/x":    "http://alice:pa%3Ass@plain.proxy.example:3128",
		"http://skip.example/":        "",
		"https://a.internal.example/": "",
		"http://127.0.0.1:8080/":      "", // never a loopback target
	} {
		got := get(t, p, raw)
		if got == nil && want != "" || got != nil && got.String() != want {
			t.Errorf("proxy for %s = %v, want %q", raw, got, want)
		}
	}
	if !p.isProxy("tls.proxy.example:1080") || !p.isProxy("plain.proxy.example:3128") || p.isProxy("api.example.com:443") {
		t.Errorf("the guard would not know the proxies: %v", &p.seen)
	}
	direct, err := newProxies(ClientConfig{Proxy: ProxyDirect}, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, direct, "https://api.example.com/"); got != nil {
		t.Errorf("--proxy direct: %v, want no proxy", got)
	}
	flag, err := newProxies(ClientConfig{Proxy: "http://bob:pw@flag.proxy.example:8080"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, flag, "http://skip.example/"); got == nil || got.String() != "http://bob:pw@flag.proxy.example:8080" {
		t.Errorf("--proxy: %v, want the flag's proxy for every URL", got)
	}
}

// The proxy secret's errors say what is wrong, never the value.
func TestProxySecretErrors(t *testing.T) {
	store := mustStore(t, "", map[string][]string{"SCOPED": {"other.example"}},
		"BATCHFETCH_SECRET_NOCOLON=hunter2", "BATCHFETCH_SECRET_SCOPED=u:hunter2")
	env := &httpproxy.Config{}
	for name, want := range map[string]string{
		"MISSING": "proxy secret MISSING is not on this worker (looked in BATCHFETCH_SECRET_MISSING (no --secrets-dir))",
		"NOCOLON": "proxy secret NOCOLON: want user:password",
		"SCOPED":  "proxy secret SCOPED may not be sent to the proxy proxy.example: --secret-hosts limits it to other.example",
	} {
		p, err := newProxies(ClientConfig{Proxy: "http://proxy.example:3128", ProxySecret: name, Secrets: store}, env)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/", nil)
		_, err = p.proxy(req)
		if err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	for _, tc := range []struct{ proxy, want string }{
		{"ftp://u:hunter2@proxy.example", "proxy ftp://u:xxxxx@proxy.example: the scheme is not http, https, socks5 or socks5h"},
		{"http://u:hunter2@proxy.example/path", "a proxy URL has no path"},
		{"http://u:hunter2@%zz", "proxy: not a URL"},
		{"proxy.example:3128", "proxy: not a URL"},
	} {
		err := CheckProxy(tc.proxy)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckProxy(%q) = %v, want %q", tc.proxy, err, tc.want)
		}
	}
}

// target is a server that records the credentials it was sent.
type target struct {
	mu              sync.Mutex
	auth, proxyAuth []string
	*httptest.Server
}

func newTarget(t *testing.T, tls bool) *target {
	tg := &target{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		tg.auth = append(tg.auth, r.Header.Get("Authorization"))
		tg.proxyAuth = append(tg.proxyAuth, r.Header.Get("Proxy-Authorization"))
		tg.mu.Unlock()
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("hello"))
	})
	if tls {
		tg.Server = httptest.NewTLSServer(h)
	} else {
		tg.Server = httptest.NewServer(h)
	}
	t.Cleanup(tg.Close)
	return tg
}

func (tg *target) saw() (auth, proxyAuth []string) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.auth...), append([]string(nil), tg.proxyAuth...)
}

// proxied fetches urls with one header naming the secret TOKEN, through
// cfg's proxy, trusting tg's certificate.
func proxied(t *testing.T, cfg ClientConfig, tg *target, urls ...string) []Fetched {
	t.Helper()
	client, err := newHTTPClient(cfg, &httpproxy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if tg != nil && tg.TLS != nil {
		transportOf(client).TLSClientConfig = tg.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	f := &Fetcher{Client: client, Store: store, Secrets: cfg.Secrets}
	env.RegisterActivity(f)
	e := &fetchEnv{env: env, f: f}
	return e.fetch(t, FetchChunkRequest{Prefix: "batches/p", Concurrency: 1, Policy: quick, URLs: chunkOf(urls...),
		Request: &Request{Headers: []Header{{Name: "Authorization", Value: "Bearer ${secret:TOKEN}"}}}})
}

func transportOf(c *http.Client) *http.Transport {
	return c.Transport.(userAgent).next.(proxyGuard).next.(*http.Transport)
}

var local = Guard{Allow: []string{"127.0.0.1"}}

// An https target goes through an HTTP proxy's CONNECT: the proxy
// secret reaches the proxy (and rotates), the target gets its own
// Authorization and never the proxy's.
func TestProxyConnectCarriesProxySecret(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "PROXY"), "alice:s3cret\n")
	write(t, filepath.Join(dir, "TOKEN"), "tok-1\n")
	store := mustStore(t, dir, nil)
	px, rec := httpProxy(t, "127.0.0.1:0", "")
	tg := newTarget(t, true)
	cfg := ClientConfig{Guard: local, Proxy: px.URL, ProxySecret: "PROXY", Secrets: store}
	items := proxied(t, cfg, tg, tg.URL+"/a")
	if items[0].Outcome != "" {
		t.Fatalf("through the proxy: %+v", items[0])
	}
	write(t, filepath.Join(dir, "PROXY"), "alice:rotated\n")
	items = proxied(t, cfg, tg, tg.URL+"/b")
	if items[0].Outcome != "" {
		t.Fatalf("after rotating the proxy secret: %+v", items[0])
	}
	saw := rec.all()
	host := strings.TrimPrefix(tg.URL, "https://")
	if len(saw) != 2 || saw[0] != (seen{Method: "CONNECT", Target: host, ProxyAuth: basic("alice", "s3cret")}) ||
		saw[1].ProxyAuth != basic("alice", "rotated") {
		t.Errorf("the proxy saw %+v, want two CONNECTs to %s with the proxy secret, then the rotated one", saw, host)
	}
	rec.mu.Lock()
	agents := append([]string(nil), rec.agents...)
	rec.mu.Unlock()
	for _, a := range agents {
		if !strings.HasPrefix(a, "batchfetch/") {
			t.Errorf("a CONNECT came as User-Agent %q, want the worker's batchfetch/...", a)
		}
	}
	auth, proxyAuth := tg.saw()
	if len(auth) != 2 || auth[0] != "Bearer tok-1" || proxyAuth[0] != "" || proxyAuth[1] != "" {
		t.Errorf("the target saw Authorization %q and Proxy-Authorization %q; want its token and no proxy credentials", auth, proxyAuth)
	}
}

// An http target goes in the absolute form, with the proxy secret; a
// proxy that wants credentials and gets none answers 407.
func TestProxyAbsoluteForm(t *testing.T) {
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_PROXY=bob:pw", "BATCHFETCH_SECRET_TOKEN=tok")
	px, rec := httpProxy(t, "127.0.0.1:0", basic("bob", "pw"))
	tg := newTarget(t, false)
	items := proxied(t, ClientConfig{Guard: local, Proxy: px.URL, ProxySecret: "PROXY", Secrets: store}, tg, tg.URL+"/x")
	if items[0].Outcome != "" {
		t.Fatalf("through the proxy: %+v", items[0])
	}
	if saw := rec.all(); len(saw) != 1 || saw[0] != (seen{Method: "GET", Target: strings.TrimPrefix(tg.URL, "http://"), ProxyAuth: basic("bob", "pw")}) {
		t.Errorf("the proxy saw %+v", saw)
	}
	if auth, _ := tg.saw(); len(auth) != 1 || auth[0] != "Bearer tok" {
		t.Errorf("the target saw Authorization %q", auth)
	}
	items = proxied(t, ClientConfig{Guard: local, Proxy: px.URL, Secrets: store}, tg, tg.URL+"/x")
	if items[0].Outcome != OutcomeHTTPError || items[0].Status != http.StatusProxyAuthRequired {
		t.Errorf("without the proxy secret: %+v, want the proxy's 407", items[0])
	}
}

// SOCKS5, without authentication and with user/password from the secret.
func TestProxySOCKS5(t *testing.T) {
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_PROXY=carol:pw5", "BATCHFETCH_SECRET_TOKEN=tok")
	tg := newTarget(t, false)
	open, openRec := socks5Proxy(t, "", "")
	if items := proxied(t, ClientConfig{Guard: local, Proxy: "socks5://" + open, Secrets: store}, tg, tg.URL+"/open"); items[0].Outcome != "" {
		t.Fatalf("through SOCKS5: %+v", items[0])
	}
	locked, lockedRec := socks5Proxy(t, "carol", "pw5")
	if items := proxied(t, ClientConfig{Guard: local, Proxy: "socks5h://" + locked, ProxySecret: "PROXY", Secrets: store}, tg, tg.URL+"/locked"); items[0].Outcome != "" {
		t.Fatalf("through SOCKS5 with a password: %+v", items[0])
	}
	host := strings.TrimPrefix(tg.URL, "http://")
	if saw := openRec.all(); len(saw) != 1 || saw[0] != (seen{Method: "CONNECT", Target: host}) {
		t.Errorf("the open SOCKS5 proxy saw %+v", saw)
	}
	if saw := lockedRec.all(); len(saw) != 1 || saw[0] != (seen{Method: "CONNECT", Target: host, User: "carol", Pass: "pw5"}) {
		t.Errorf("the SOCKS5 proxy with a password saw %+v", saw)
	}
	if auth, _ := tg.saw(); len(auth) != 2 || auth[0] != "Bearer tok" || auth[1] != "Bearer tok" {
		t.Errorf("the target saw Authorization %q", auth)
	}
}

// Through a proxy the guard checks the target before anything is sent:
// with only 127.0.0.1 allowed, 127.0.0.2 is refused (first asked, and
// redirected to), and the proxy hears nothing of it.
func TestProxyGuardChecksTarget(t *testing.T) {
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_TOKEN=tok")
	px, rec := httpProxy(t, "127.0.0.1:0", "")
	forbidden := "http://127.0.0.2:9/secret"
	items := proxied(t, ClientConfig{Guard: local, Proxy: px.URL, Secrets: store}, nil, forbidden)
	var blocked *BlockedError
	if it := items[0]; it.Outcome != OutcomeError || it.Attempts != 1 || !strings.Contains(it.Error, "refusing to connect: 127.0.0.2 is a loopback address") {
		t.Errorf("%s through the proxy: %+v, want refused after one attempt", forbidden, it)
	}
	if n := rec.conns.Load(); n != 0 {
		t.Errorf("%d connections reached the proxy, want none", n)
	}
	tg := newTarget(t, false)
	items = proxied(t, ClientConfig{Guard: local, Proxy: px.URL, Secrets: store}, tg, tg.URL+"/redirect?to="+url.QueryEscape(forbidden))
	if it := items[0]; it.Outcome != OutcomeError || !strings.Contains(it.Error, "refusing to connect: 127.0.0.2 is a loopback address") {
		t.Errorf("a redirect to %s through the proxy: %+v, want refused", forbidden, it)
	}
	if saw := rec.all(); len(saw) != 1 || !strings.HasSuffix(saw[0].Target, tg.Listener.Addr().(*net.TCPAddr).String()) {
		t.Errorf("the proxy saw %+v, want only the first request", saw)
	}
	a, _ := local.compile()
	if err := a.checkTarget(t.Context(), "[::1]"); !errors.As(err, &blocked) || blocked.Addr.String() != "::1" {
		t.Errorf("checkTarget([::1]) = %v, want it blocked", err)
	}
}

// The worker may reach its proxy even where the guard refuses the
// proxy's address: the operator chose it.
func TestProxyGuardLetsTheProxyIn(t *testing.T) {
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_TOKEN=tok")
	px, rec := httpProxy(t, "127.0.0.2:0", "")
	tg := newTarget(t, false)
	items := proxied(t, ClientConfig{Guard: local, Proxy: px.URL, Secrets: store}, tg, tg.URL+"/x")
	if items[0].Outcome != "" || len(rec.all()) != 1 {
		t.Errorf("through a proxy on 127.0.0.2: %+v; the proxy saw %+v", items[0], rec.all())
	}
}

// A secret scoped with --secret-hosts goes only there: elsewhere the URL
// fails, its value never sent; a file's rotation shows at the next fetch.
func TestSecretStoreScopeAndRotationInFetches(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "TOKEN"), "tok-1\n")
	tg := newTarget(t, false)
	scoped := mustStore(t, dir, map[string][]string{"TOKEN": {"api.example.com"}})
	items := proxied(t, ClientConfig{Guard: local, Proxy: ProxyDirect, Secrets: scoped}, tg, tg.URL+"/x")
	if it := items[0]; it.Outcome != OutcomeError || it.Error != "header Authorization: secret TOKEN may not be sent to 127.0.0.1: fetch worker (unnamed) limits it to api.example.com (--secret-hosts)" {
		t.Errorf("out of scope: %+v", it)
	}
	if auth, _ := tg.saw(); len(auth) != 0 {
		t.Errorf("the target was asked %d times, want none", len(auth))
	}
	store := mustStore(t, dir, map[string][]string{"TOKEN": {"127.0.0.1"}})
	proxied(t, ClientConfig{Guard: local, Proxy: ProxyDirect, Secrets: store}, tg, tg.URL+"/x")
	write(t, filepath.Join(dir, "TOKEN"), "tok-2-rotated\n")
	proxied(t, ClientConfig{Guard: local, Proxy: ProxyDirect, Secrets: store}, tg, tg.URL+"/x")
	if auth, _ := tg.saw(); !reflect.DeepEqual(auth, []string{"Bearer tok-1", "Bearer tok-2-rotated"}) {
		t.Errorf("the target saw Authorization %q, want the secret, then the rotated one", auth)
	}
}
