package activities

import (
	"encoding/base64"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// A secret whose value ends (or starts) with a space: Go's client trims a
// header value's surrounding spaces as it writes it, so the server sees
// the value without them. A server that echoes it must not put it in the
// URL's error.
func TestBreak2ASecretWithSurroundingSpacesIsScrubbedAsSent(t *testing.T) {
	for name, value := range map[string]string{"trailing": testToken + " ", "leading": "\t" + testToken} {
		t.Run(name, func(t *testing.T) {
			var log seenLog
			srv := rawServer(t, &log, func(r *http.Request) string {
				return "HTTP/1.1 403 bad key " + r.Header.Get("X-Api-Key") + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
			})
			e := newFetchEnv(t, 0)
			e.f.Secrets = mapSecrets{"KEY": value}
			req := &Request{Headers: []Header{{Name: "X-Api-Key", Value: "${secret:KEY}"}}}
			it := e.fetch(t, FetchChunkRequest{Prefix: "batches/s", URLs: chunkOf(srv.URL + "/a"), Concurrency: 1, Policy: quick, Request: req})[0]
			if len(log.all()) == 0 {
				t.Fatal("the server got nothing")
			}
			if strings.Contains(it.Error, testToken) {
				t.Errorf("the URL's error holds the secret's value: %q", it.Error)
			}
		})
	}
}

// A named pipe in --secrets-dir (or any file that blocks when opened) is
// refused: opening it would block, holding the store's lock, and with it
// the lookup of every other secret of the worker.
func TestBreak2AFifoInTheSecretsDirDoesNotHangOtherSecrets(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "OK"), "fine\n")
	fifo := filepath.Join(dir, "PIPE")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	s := mustStore(t, dir, nil)
	pipeDone := make(chan error, 1)
	go func() { _, _, _, err := s.Secret("PIPE"); pipeDone <- err }()
	t.Cleanup(func() {
		// Unblock a reader stuck opening the pipe.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	select {
	case err := <-pipeDone:
		if err == nil || !strings.Contains(err.Error(), "PIPE") {
			t.Errorf("Secret(PIPE) = %v, want an error naming the file", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Secret(PIPE) hangs opening the named pipe")
	}
}

// A proxy of the environment that is not a URL: its password must not
// be in a request's error, and requests must not go direct as if no
// proxy had been given. No request is sent.
func TestBreak2ABadProxyOfTheEnvironment(t *testing.T) {
	for _, raw := range []string{"http://u:hunter2@%zz:3128", "u:hunter2@%zz:3128"} {
		p, err := newProxies(ClientConfig{}, &httpproxy.Config{HTTPSProxy: raw})
		if err != nil {
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: %v holds the password", raw, err)
			}
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/", nil)
		u, err := p.proxy(req)
		switch {
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("HTTPS_PROXY=%s: the error %q holds the password", raw, err)
		case err == nil && u == nil:
			t.Errorf("HTTPS_PROXY=%s: the request goes direct, no error", raw)
		}
	}
}

// The proxy's password is in no error: a proxy that is not there, a
// CONNECT answered 407 (whose reason phrase echoes what it got), a SOCKS5
// proxy that refuses the password.
func TestBreak2TheProxyPasswordIsInNoError(t *testing.T) {
	const pass = "pw-7c0ffee1d"
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_PROXY=alice:"+pass, "BATCHFETCH_SECRET_TOKEN=tok")
	b64 := base64.StdEncoding.EncodeToString([]byte("alice:" + pass))
	tg := newTarget(t, true)
	check := func(what string, items []Fetched) {
		t.Helper()
		it := items[0]
		if it.Outcome == "" {
			t.Errorf("%s: %+v, want a failure", what, it)
		}
		if strings.Contains(it.Error, pass) || strings.Contains(it.Error, b64) {
			t.Errorf("%s: the error %q holds the proxy's password", what, it.Error)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	check("no proxy there, secret", proxied(t, ClientConfig{Guard: local, Proxy: "http://" + gone, ProxySecret: "PROXY", Secrets: store}, tg, tg.URL+"/a"))
	check("no proxy there, flag", proxied(t, ClientConfig{Guard: local, Proxy: "http://alice:" + pass + "@" + gone, Secrets: store}, tg, tg.URL+"/a"))

	echo := listenOn(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 407 no " + r.Header.Get("Proxy-Authorization") + "\r\nContent-Length: 0\r\n\r\n")
		_ = buf.Flush()
	}))
	echo.Start()
	t.Cleanup(echo.Close)
	check("CONNECT 407 echoing", proxied(t, ClientConfig{Guard: local, Proxy: echo.URL, ProxySecret: "PROXY", Secrets: store}, tg, tg.URL+"/a"))
	plain := newTarget(t, false)
	check("absolute form 407 echoing", proxied(t, ClientConfig{Guard: local, Proxy: echo.URL, ProxySecret: "PROXY", Secrets: store}, plain, plain.URL+"/a"))

	socks, _ := socks5Proxy(t, "alice", "other")
	check("SOCKS5 refusing", proxied(t, ClientConfig{Guard: local, Proxy: "socks5://" + socks, ProxySecret: "PROXY", Secrets: store}, tg, tg.URL+"/a"))
}

// Through the proxy, a literal IPv6 loopback target, and a redirect to
// one, are refused before the proxy hears of them.
func TestBreak2IPv6LoopbackTargetThroughTheProxy(t *testing.T) {
	store := mustStore(t, "", nil, "BATCHFETCH_SECRET_TOKEN=tok")
	for _, scheme := range []string{"http", "socks5"} {
		var proxyURL string
		var rec *record
		if scheme == "http" {
			px, r := httpProxy(t, "127.0.0.1:0", "")
			proxyURL, rec = px.URL, r
		} else {
			addr, r := socks5Proxy(t, "", "")
			proxyURL, rec = "socks5h://"+addr, r
		}
		tg := newTarget(t, false)
		for _, u := range []string{"http://[::1]:9/x", "http://[::ffff:7f00:2]:9/x", "http://[0:0:0:0:0:ffff:127.0.0.2]:9/", tg.URL + "/redirect?to=http://%5B::1%5D:9/x"} {
			items := proxied(t, ClientConfig{Guard: local, Proxy: proxyURL, Secrets: store}, tg, u)
			if it := items[0]; it.Outcome != OutcomeError || !strings.Contains(it.Error, "refusing to connect") {
				t.Errorf("%s via %s: %+v, want refused", u, scheme, it)
			}
		}
		for _, s := range rec.all() {
			if !strings.Contains(s.Target, "127.0.0.1") {
				t.Errorf("the %s proxy was asked for %s", scheme, s.Target)
			}
		}
	}
}

// --secret-hosts limits TOKEN to 127.0.0.1: a redirect to another host
// (localhost, which the guard lets in as it is 127.0.0.1) does not carry
// it. (The redirect is followed without it; the URL does not end as
// error.)
func TestBreak2ARedirectOutOfTheSecretsScopeDoesNotCarryIt(t *testing.T) {
	if addrs, err := net.LookupHost("localhost"); err != nil || len(addrs) == 0 || addrs[0] != "127.0.0.1" {
		t.Skipf("localhost is %v here, %v", addrs, err)
	}
	tg := newTarget(t, false)
	store := mustStore(t, "", map[string][]string{"TOKEN": {"127.0.0.1"}}, "BATCHFETCH_SECRET_TOKEN=tok-scoped")
	other := strings.Replace(tg.URL, "127.0.0.1", "localhost", 1) + "/x"
	proxied(t, ClientConfig{Guard: Guard{Allow: []string{"127.0.0.1", "::1"}}, Proxy: ProxyDirect, Secrets: store}, tg, tg.URL+"/redirect?to="+other)
	if auth, _ := tg.saw(); len(auth) != 2 || auth[0] != "Bearer tok-scoped" || auth[1] != "" {
		t.Errorf("the target saw Authorization %q, want the token at 127.0.0.1, then nothing at localhost", auth)
	}
}

// Kubernetes updates a secret volume by swapping the ..data symlink: the
// next request has the new value, the old directory gone.
func TestBreak2ASymlinkSwapRotatesTheSecret(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		if err := os.Mkdir(filepath.Join(dir, "..2026_"+v), 0o700); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "..2026_"+v, "TOKEN"), "tok-"+v+"\n")
	}
	if err := os.Symlink("..2026_v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/TOKEN", filepath.Join(dir, "TOKEN")); err != nil {
		t.Fatal(err)
	}
	s := mustStore(t, dir, nil)
	wantSecret(t, s, "TOKEN", "tok-v1")
	if err := os.Symlink("..2026_v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_v1")); err != nil {
		t.Fatal(err)
	}
	wantSecret(t, s, "TOKEN", "tok-v2")
	if n, err := s.Names(); err != nil || len(n.Dir) != 1 || n.Dir[0] != "TOKEN" || len(n.Unusable) != 0 {
		t.Errorf("Names = %+v, %v; want TOKEN only", n, err)
	}
}

// A secret file caught empty (truncated by a rewrite in place, or left
// empty) must not send an empty credential as if it were one.
func TestBreak2AnEmptySecretIsNotSent(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "TOKEN"), "")
	tg := newTarget(t, false)
	items := proxied(t, ClientConfig{Guard: local, Proxy: ProxyDirect, Secrets: mustStore(t, dir, nil)}, tg, tg.URL+"/x")
	auth, _ := tg.saw()
	if it := items[0]; it.Outcome != OutcomeError || len(auth) != 0 {
		t.Errorf("an empty secret: %+v, the target saw Authorization %q; want an error and nothing sent", it, auth)
	}
}

// With the proxy of the environment on 127.0.0.2 (the guard allows only
// 127.0.0.1), a batch URL naming the proxy's own address goes direct (the
// environment never proxies loopback): it must be refused like any other
// loopback target, not let in because the worker may reach its proxy.
func TestBreak2TheProxysAddressAsADirectTargetIsGuarded(t *testing.T) {
	px, rec := httpProxy(t, "127.0.0.2:0", "")
	client, err := newHTTPClient(ClientConfig{Guard: local}, &httpproxy.Config{HTTPProxy: px.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	// Another loopback address the guard does not allow: refused (the
	// environment's proxy never takes loopback targets, so it goes
	// direct, and the guarded dialer refuses it).
	if resp, err := client.Get("http://127.0.0.3/"); err == nil {
		resp.Body.Close()
		t.Fatal("http://127.0.0.3/ through the proxy was not refused")
	}
	resp, err := client.Get(px.URL + "/squid-internal-mgr/info")
	if err == nil {
		resp.Body.Close()
	}
	if saw := rec.all(); len(saw) != 0 || err == nil || !strings.Contains(err.Error(), "refusing to connect") {
		t.Errorf("%s as a target: err %v; the proxy saw %+v; want refused, nothing sent", px.URL, err, saw)
	}
}
