package activities

import (
	"github.com/batchfetch/batchfetch/internal/buildinfo"
	"github.com/batchfetch/batchfetch/internal/tracing"

	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpproxy"
)

// ClientConfig sizes the one HTTP client a fetch worker shares between all
// its activities. The zero value takes every default.
type ClientConfig struct {
	// MaxConnsPerHost caps connections (idle and active) to one host.
	// Default 32 here; a worker (internal/workers) defaults it to its
	// fetch slots.
	MaxConnsPerHost int
	// MaxRedirects is how many redirects one request follows. Default 5.
	MaxRedirects int
	// DialTimeout bounds connecting (TCP and TLS each). Default 10s.
	DialTimeout time.Duration
	// IdleConnTimeout closes keep-alive connections idle this long. Default 90s.
	IdleConnTimeout time.Duration
	// UserAgent sent with every request (a batch's own wins). Default
	// "batchfetch/<build ID>".
	UserAgent string
	// Guard decides which addresses may be fetched: by default only
	// public ones. Through a proxy, it checks the target's addresses
	// before the request goes, and lets the worker reach the proxy.
	Guard Guard
	// Proxy is where requests go through: "" follows the standard
	// HTTPS_PROXY, HTTP_PROXY and NO_PROXY environment (which never
	// proxies a loopback target), ProxyDirect none, and a URL that proxy:
	// http:// or https:// (CONNECT for an https target, the absolute
	// form for an http one), socks5:// or socks5h://.
	Proxy string
	// ProxySecret names the secret, in Secrets, whose value is the
	// proxy's user:password (Basic Proxy-Authorization, or SOCKS5
	// user/password). It wins over a user in the proxy's URL.
	ProxySecret string
	// Secrets holds ProxySecret.
	Secrets Secrets
	// TracerProvider, when set, gives every request made within a traced
	// activity an HTTP span of its own (internal/tracing.Transport). Nil:
	// no spans, no wrapping.
	TracerProvider trace.TracerProvider
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.MaxConnsPerHost <= 0 {
		c.MaxConnsPerHost = 32
	}
	if c.MaxRedirects <= 0 {
		c.MaxRedirects = 5
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.IdleConnTimeout <= 0 {
		c.IdleConnTimeout = 90 * time.Second
	}
	if c.UserAgent == "" {
		c.UserAgent = "batchfetch/" + buildinfo.ID()
	}
	return c
}

// errTooManyRedirects is returned (wrapped in *url.Error) by the client's
// redirect policy.
var errTooManyRedirects = errors.New("too many redirects")

// NewHTTPClient builds the pooled client. It has no overall timeout: each
// request carries the activity's deadline in its context. It uses the
// proxy cfg.Proxy names (by default the environment's).
func NewHTTPClient(cfg ClientConfig) (*http.Client, error) {
	return newHTTPClient(cfg, httpproxy.FromEnvironment())
}

func newHTTPClient(cfg ClientConfig, env *httpproxy.Config) (*http.Client, error) {
	cfg = cfg.withDefaults()
	allow, err := cfg.Guard.compile()
	if err != nil {
		return nil, err
	}
	px, err := newProxies(cfg, env)
	if err != nil {
		return nil, err
	}
	allow.proxy = px.isProxy
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 px.proxy,
		DialContext:           allow.dialer(dialer),
		MaxIdleConns:          0, // no global cap; the per-host caps bound it
		MaxIdleConnsPerHost:   cfg.MaxConnsPerHost,
		MaxConnsPerHost:       cfg.MaxConnsPerHost,
		IdleConnTimeout:       cfg.IdleConnTimeout,
		TLSHandshakeTimeout:   cfg.DialTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
		// Bodies are hashed as the server sends them: the transport asks
		// for no compression and decompresses nothing (it would do so for
		// a whole body but not for a range of it, and offsets would mix
		// the two).
		DisableCompression: true,
		// A CONNECT tells the proxy who asks, as the requests tell the
		// targets (Go's own agent otherwise).
		ProxyConnectHeader: http.Header{"User-Agent": {cfg.UserAgent}},
	}
	ua := cfg.UserAgent
	return &http.Client{
		Transport: userAgent{ua: ua, next: tracing.Transport(proxyGuard{proxies: px, allow: allow, next: transport}, cfg.TracerProvider)},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return fmt.Errorf("%w (more than %d)", errTooManyRedirects, cfg.MaxRedirects)
			}
			dropCredentials(req, via)
			return nil
		},
	}, nil
}

type userAgent struct {
	ua   string
	next http.RoundTripper
}

func (u userAgent) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", u.ua)
	}
	return u.next.RoundTrip(req)
}

// CloseIdleConnections lets a worker release its pool on shutdown.
func (u userAgent) CloseIdleConnections() {
	if c, ok := u.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// StatusClass says what a final HTTP status means for the batch.
type StatusClass int

const (
	// StatusOK is a 2xx: the body is the result.
	StatusOK StatusClass = iota
	// StatusRetryable is 408, 429 or 5xx: try again after a backoff.
	StatusRetryable
	// StatusPermanent is any other status: retrying will not help.
	StatusPermanent
)

// ClassifyStatus maps an HTTP status to what the fetcher does with it.
func ClassifyStatus(code int) StatusClass {
	switch {
	case code >= 200 && code < 300:
		return StatusOK
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500 && code < 600:
		return StatusRetryable
	default:
		return StatusPermanent
	}
}

// maxRetryAfter bounds how long a server may ask us to wait.
const maxRetryAfter = time.Hour

// RetryAfter parses a Retry-After header (delta-seconds or an HTTP date,
// relative to now). It returns 0 when the header is absent or unusable.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

// Redact hides the password (and user) of a URL so it can be logged.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
