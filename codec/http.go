package codec

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
)

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
	session := sessionValue(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		allowedOrigin := origin != "" && slices.Contains(origins, origin)
		if allowedOrigin {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization,Content-Type,X-Namespace")
			w.Header().Set("Access-Control-Allow-Methods", "POST,OPTIONS")
			w.Header().Set("Access-Control-Max-Age", "600")
		}
		w.Header().Add("Vary", "Origin")
		if path.Base(r.URL.Path) == "login" {
			login(w, r, token, session)
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
		case hasSession(r, session):
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
		inner.ServeHTTP(w, r)
	})
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// sessionValue is what the cookie holds: derived from the token, so the
// cookie does not carry the token itself, and changing the token signs
// every browser out.
func sessionValue(token string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("batchfetch codec session v1"))
	return hex.EncodeToString(m.Sum(nil))
}

func hasSession(r *http.Request, session string) bool {
	for _, ck := range r.Cookies() {
		if ck.Name == SessionCookie && equal(ck.Value, session) {
			return true
		}
	}
	return false
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
func login(w http.ResponseWriter, r *http.Request, token, session string) {
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
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if token != "" && equal(r.PostFormValue("token"), token) {
			http.SetCookie(w, &http.Cookie{
				Name: SessionCookie, Value: session, Path: "/", MaxAge: int(sessionTTL / time.Second),
				HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
			})
			data.Signed = true
		} else {
			w.WriteHeader(http.StatusUnauthorized)
			data.Wrong = true
		}
	default:
		http.Error(w, "GET or POST", http.StatusMethodNotAllowed)
		return
	}
	_ = loginPage.Execute(w, data)
}
