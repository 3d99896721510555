package activities

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpproxy"
)

// ProxyDirect is the Proxy setting that sends every request directly,
// whatever the environment says.
const ProxyDirect = "direct"

// proxySchemes are the proxies net/http speaks to: HTTP (CONNECT for an
// https target, the absolute form for an http one) and SOCKS5 (both
// forms let the proxy resolve the name).
var proxySchemes = map[string]bool{"http": true, "https": true, "socks5": true, "socks5h": true}

// CheckProxy says what is wrong with a Proxy setting, or nil. Its
// messages never show a password the URL holds.
func CheckProxy(s string) error {
	_, err := parseProxy(s)
	return err
}

func parseProxy(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		// url.Parse's message quotes the whole URL, password and all.
		return nil, errors.New("proxy: not a URL of the form scheme://host:port (http, https, socks5 or socks5h; or direct)")
	}
	if !proxySchemes[u.Scheme] {
		return nil, fmt.Errorf("proxy %s: the scheme is not http, https, socks5 or socks5h", u.Redacted())
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy %s: a proxy URL has no path, query or fragment", u.Redacted())
	}
	return u, nil
}

// proxies picks the proxy of each request, with the worker's credentials
// for it, and remembers every proxy it picked so that the guard lets the
// worker connect to them.
type proxies struct {
	pick    func(*url.URL) (*url.URL, error) // nil: no proxy
	secret  string
	secrets Secrets
	seen    sync.Map // canonical host:port -> true
}

// newProxies follows cfg.Proxy, or env when it is "".
func newProxies(cfg ClientConfig, env *httpproxy.Config) (*proxies, error) {
	p := &proxies{secret: cfg.ProxySecret, secrets: cfg.Secrets}
	switch cfg.Proxy {
	case ProxyDirect:
	case "":
		if err := checkEnvProxies(env); err != nil {
			return nil, err
		}
		p.pick = env.ProxyFunc()
	default:
		u, err := parseProxy(cfg.Proxy)
		if err != nil {
			return nil, err
		}
		p.pick = func(*url.URL) (*url.URL, error) { return u, nil }
	}
	if p.secret != "" {
		if err := CheckSecretName(p.secret); err != nil {
			return nil, fmt.Errorf("proxy secret: %w", err)
		}
		if p.secrets == nil {
			return nil, fmt.Errorf("proxy secret %s: the worker has no secrets", p.secret)
		}
	}
	return p, nil
}

// checkEnvProxies refuses a proxy of the environment that is not a URL:
// httpproxy would drop it and send those requests directly. Its message
// never shows the value (a password may be in it).
func checkEnvProxies(env *httpproxy.Config) error {
	for _, v := range []struct{ name, value string }{{"HTTPS_PROXY", env.HTTPSProxy}, {"HTTP_PROXY", env.HTTPProxy}} {
		if v.value == "" {
			continue
		}
		u, err := url.Parse(v.value)
		if err == nil && u.Scheme != "" && u.Host != "" {
			continue
		}
		if _, err := url.Parse("http://" + v.value); err != nil {
			return fmt.Errorf("proxy: %s (or its lower-case form) is not a URL of the form scheme://host:port, and requests would go without it", v.name)
		}
	}
	return nil
}

// proxy is the Transport's Proxy: the proxy for req (nil: none), with the
// user and password of the proxy secret when there is one.
func (p *proxies) proxy(req *http.Request) (*url.URL, error) {
	if p.pick == nil {
		return nil, nil
	}
	u, err := p.pick(req.URL)
	if err != nil || u == nil {
		return nil, err
	}
	if p.secret != "" {
		user, err := p.credentials(u.Hostname())
		if err != nil {
			return nil, err
		}
		c := *u
		c.User = user
		u = &c
	}
	p.seen.Store(proxyAddr(u), true)
	return u, nil
}

// credentials is the proxy secret as a URL's user and password. Read at
// each request, so that it rotates as the store's secrets do.
func (p *proxies) credentials(proxyHost string) (*url.Userinfo, error) {
	v, hosts, ok, err := p.secrets.Secret(p.secret)
	switch {
	case err != nil:
		return nil, fmt.Errorf("proxy secret %s: %w", p.secret, err)
	case !ok:
		return nil, fmt.Errorf("proxy secret %s is not on this worker (looked in %s)", p.secret, p.secrets.Where(p.secret))
	case hosts != nil && !HostMatches(proxyHost, hosts):
		return nil, fmt.Errorf("proxy secret %s may not be sent to the proxy %s: --secret-hosts limits it to %s", p.secret, proxyHost, strings.Join(hosts, ", "))
	}
	user, pass, found := strings.Cut(v, ":")
	if !found || user == "" {
		return nil, fmt.Errorf("proxy secret %s: want user:password", p.secret)
	}
	return url.UserPassword(user, pass), nil
}

// isProxy tells whether address (host:port, as the Transport dials it)
// is a proxy this worker was configured with.
func (p *proxies) isProxy(address string) bool {
	_, ok := p.seen.Load(strings.ToLower(address))
	return ok
}

// proxyAddr is the address the Transport dials for proxy u.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080", "socks5h": "1080"}[u.Scheme]
	}
	return strings.ToLower(net.JoinHostPort(u.Hostname(), port))
}

// proxyGuard checks the target of a request that goes through a proxy:
// the guard's dialer only sees the proxy's address. It resolves the
// target's host and refuses the request, before anything is sent, when
// any of its addresses is not allowed (a literal address is checked as
// it is). The proxy resolves the name again: an answer that changes in
// between (DNS rebinding) is the proxy's to refuse, as smokescreen does.
// It sits in front of the Transport, under the client, so every redirect
// is checked too.
type proxyGuard struct {
	proxies *proxies
	allow   *allowList
	next    http.RoundTripper
}

func (g proxyGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	p, err := g.proxies.proxy(req)
	if err == nil && p != nil {
		err = g.allow.checkTarget(req.Context(), req.URL.Hostname())
	}
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if p == nil {
		return g.next.RoundTrip(req)
	}
	req = req.WithContext(context.WithValue(req.Context(), viaProxyKey{}, true))
	resp, err := g.next.RoundTrip(req)
	if p.User == nil {
		return resp, err
	}
	// A proxy may echo what it got (in a reason phrase, of a 407 to a
	// CONNECT or to the absolute form): its credentials must not reach a
	// result.
	forms := proxyCredentialForms(p.User)
	if err != nil {
		return nil, scrubbedError{err: err, msg: scrub(err.Error(), forms)}
	}
	resp.Status = scrub(resp.Status, forms)
	return resp, nil
}

// proxyCredentialForms are the forms in which a proxy's credentials go:
// user:password, base64 for Basic, and the password alone.
func proxyCredentialForms(u *url.Userinfo) []string {
	pass, _ := u.Password()
	up := u.Username() + ":" + pass
	return []string{base64.StdEncoding.EncodeToString([]byte(up)), up, pass}
}

// scrubbedError is an error whose message had credentials taken out; it
// unwraps to the error it was.
type scrubbedError struct {
	err error
	msg string
}

func (e scrubbedError) Error() string { return e.msg }
func (e scrubbedError) Unwrap() error { return e.err }

// viaProxyKey marks the context of a request that goes through a proxy:
// only its dials may reach a proxy's address past the guard. A request
// that goes direct to that address (NO_PROXY, or a loopback target the
// environment never proxies) is guarded like any other.
type viaProxyKey struct{}

func viaProxy(ctx context.Context) bool {
	v, _ := ctx.Value(viaProxyKey{}).(bool)
	return v
}

func (g proxyGuard) CloseIdleConnections() {
	if c, ok := g.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// checkTarget refuses host when it is, or resolves to, an address the
// guard does not allow: every one of them, since the proxy may connect to
// any.
func (a *allowList) checkTarget(ctx context.Context, host string) error {
	if a.all || a.hosts[strings.ToLower(strings.TrimSuffix(host, "."))] {
		return nil
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		ctx, cancel := boundToAttempt(ctx)
		defer cancel()
		if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
			return fmt.Errorf("resolving %s to check it before it goes through the proxy: %w", host, err)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolving %s to check it before it goes through the proxy: no address", host)
	}
	for _, ip := range addrs {
		if !a.allows(ip) {
			return &BlockedError{Host: host, Addr: ip.Unmap(), Why: Blocked(ip)}
		}
	}
	return nil
}
