package codec

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/converter"
)

// MinTokenLength is the shortest codec token accepted: the token is
// guessable online at /login (slowly: failures are rate-limited), so it
// must be long and random.
const MinTokenLength = 24

// maxCodecBody bounds an /encode or /decode request: the UI decodes a
// page of payloads at a time, each at most Temporal's 2 MB.
const maxCodecBody = 32 << 20

// ParseOrigins reads --codec-origins: comma-separated origins
// (scheme://host[:port]), spaces and a trailing slash allowed, in any
// case. A path, a query or a missing host is an error that names the
// entry.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(strings.TrimSuffix(o, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("%q is not an origin (want scheme://host[:port], for example http://localhost:8080)", o)
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out, nil
}

// SessionCookie is the cookie /login sets for the Web UI.
const SessionCookie = "batchfetch_codec"

// sessionTTL is how long a browser stays signed in.
const sessionTTL = 12 * time.Hour

// Handler serves the Temporal codec-server protocol (POST .../encode and
// .../decode) for the Web UI and the temporal CLI, and a sign-in page.
//
// A request is allowed with either credential:
//   - "Authorization: Bearer <token>" (the temporal CLI: --codec-auth);
//   - the session cookie that /login sets once the token is typed in, sent
//     by the Web UI when its codec settings include credentials
//     (TEMPORAL_CODEC_INCLUDE_CREDENTIALS=true). A request that carries
//     only the cookie must come from one of origins (the Web UI's), which
//     also get the CORS headers a credentialed fetch needs.
//
// The cookie is HttpOnly and SameSite=Strict, so the browser sends it only
// from pages of the same site (same host name, any port); the codec
// endpoint and the Web UI must therefore be reached under the same host
// name, for example both on localhost.
func (c *Codec) Handler(token string, origins []string) http.Handler {
	inner := converter.NewPayloadCodecHTTPHandler(c)
	limiter := &loginLimiter{}
	allowed := make([]string, 0, len(origins))
	for _, o := range origins {
		allowed = append(allowed, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/")))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowedOrigin := origin != "" && slices.Contains(allowed, strings.ToLower(origin))
		if allowedOrigin {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization,Content-Type,X-Namespace")
			w.Header().Set("Access-Control-Allow-Methods", "POST,OPTIONS")
			w.Header().Set("Access-Control-Max-Age", "600")
		}
		w.Header().Add("Vary", "Origin")
		if path.Base(r.URL.Path) == "login" {
			login(w, r, token, limiter)
			return
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		switch {
		case token == "":
			http.Error(w, "unauthorized: the codec endpoint has no token set", http.StatusUnauthorized)
			return
		case equal(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), token):
		case hasSession(r, token, time.Now()):
			if !allowedOrigin {
				// A cookie alone is not enough from a page that is not the
				// Web UI, or from no page at all.
				http.Error(w, "forbidden: a session cookie is accepted only from the Web UI's origin (--codec-origins)", http.StatusForbidden)
				return
			}
		default:
			http.Error(w, "unauthorized: send Authorization: Bearer <token>, or sign in at /login", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxCodecBody)
		inner.ServeHTTP(w, r)
	})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// session is what the cookie holds: its expiry and an HMAC of it keyed by
// the token. The server checks the expiry itself (Max-Age is only a hint
// to the browser), the cookie does not carry the token, and changing the
// token signs every browser out.
func session(token string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + sessionMAC(token, exp)
}

func sessionMAC(token, exp string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("batchfetch codec session v2|" + exp))
	return hex.EncodeToString(m.Sum(nil))
}

func hasSession(r *http.Request, token string, now time.Time) bool {
	for _, ck := range r.Cookies() {
		if ck.Name != SessionCookie {
			continue
		}
		exp, mac, ok := strings.Cut(ck.Value, ".")
		if !ok || !equal(mac, sessionMAC(token, exp)) {
			continue
		}
		if t, err := strconv.ParseInt(exp, 10, 64); err == nil && now.Unix() < t {
			return true
		}
	}
	return false
}

// loginLimiter slows down guessing: after a wrong token, the next guess
// waits a second longer, up to a minute, for every client together (the
// endpoint has one user: whoever holds the token).
type loginLimiter struct {
	mu       sync.Mutex
	failures int
	next     time.Time
}

func (l *loginLimiter) allow(now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		return l.next.Sub(now), false
	}
	return 0, true
}

func (l *loginLimiter) failed(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	l.next = now.Add(min(time.Duration(l.failures)*time.Second, time.Minute))
}

func (l *loginLimiter) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = 0
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>batchfetch codec</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>batchfetch codec</h1>
{{if .Signed}}<p>Signed in for {{.TTL}}. The Temporal Web UI on this host can now decode batchfetch's payloads: reload its pages.</p>
{{else}}{{if .Wrong}}<p style="color: #b00">That is not the token.</p>{{end}}
<p>Type the codec token (BATCHFETCH_CODEC_TOKEN) to let the Temporal Web UI decode payloads in this browser.</p>
<form method="post"><input type="password" name="token" autofocus size="40"> <button>Sign in</button></form>{{end}}
</body></html>
`))

// login shows the sign-in form (GET) and checks the token (POST).
func login(w http.ResponseWriter, r *http.Request, token string, limiter *loginLimiter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	data := struct {
		Signed, Wrong bool
		TTL           time.Duration
	}{TTL: sessionTTL}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		now := time.Now()
		if wait, ok := limiter.allow(now); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
			http.Error(w, "too many wrong tokens: try again in a moment", http.StatusTooManyRequests)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
			return
		}
		if token != "" && equal(r.PostFormValue("token"), token) {
			limiter.succeeded()
			http.SetCookie(w, &http.Cookie{
				Name: SessionCookie, Value: session(token, now.Add(sessionTTL)), Path: "/", MaxAge: int(sessionTTL / time.Second),
				HttpOnly: true, SameSite: http.SameSiteStrictMode,
				// Behind an https proxy (which says so) or served over TLS.
				Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
			})
			data.Signed = true
		} else {
			limiter.failed(now)
			w.WriteHeader(http.StatusUnauthorized)
			data.Wrong = true
		}
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	_ = loginPage.Execute(w, data)
}
