package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Secrets gives the fetch worker's secrets by name, at request time.
type Secrets interface {
	// Secret is the value of the secret name, and the hosts it may be
	// sent to (nil: any). ok is false when the worker has no such
	// secret; err says why one could not be read.
	Secret(name string) (value string, hosts []string, ok bool, err error)
	// Where says where the worker looks for name, for messages.
	Where(name string) string
}

// credentialsKey marks a request's context with the headers that carry
// credentials, so that a redirect to another origin drops them.
type credentialsKey struct{}

type credentials struct {
	origin  string
	headers []string // canonical names
}

// alwaysCredentials are headers that carry credentials whatever their
// value: none of them follows a redirect to another origin.
var alwaysCredentials = []string{"Authorization", "Cookie", "Cookie2", "Proxy-Authorization"}

func origin(u *url.URL) string { return strings.ToLower(u.Scheme + "://" + u.Host) }

// newRequest builds an attempt's request: its method, headers (with the
// secrets they name put in, if this worker has them and they may go to
// the URL's host) and body. A failure is final: a missing or out-of-scope
// secret, an unreadable body.
func (f *Fetcher) newRequest(ctx context.Context, rawURL string, r *Request) (*http.Request, []string, *failure) {
	var values []string // of the secrets put in
	final := func(msg string) (*http.Request, []string, *failure) {
		return nil, nil, &failure{outcome: OutcomeError, msg: msg}
	}
	body, fail := f.requestBody(ctx, r)
	if fail != nil {
		return nil, nil, fail
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method(), rawURL, rd)
	if err != nil {
		return final("building request: " + err.Error())
	}
	if r == nil {
		return req, nil, nil
	}
	creds := credentials{origin: origin(req.URL)}
	host := req.URL.Hostname()
	for _, h := range r.Headers {
		v, secret, used, err := f.expand(h, host)
		if err != nil {
			return final(err.Error())
		}
		values = append(values, used...)
		name := http.CanonicalHeaderKey(h.Name)
		req.Header.Set(name, v)
		if secret {
			creds.headers = append(creds.headers, name)
		}
	}
	return req.WithContext(context.WithValue(ctx, credentialsKey{}, creds)), values, nil
}

// requestBody is the request's body: its text, or the blob it names.
func (f *Fetcher) requestBody(ctx context.Context, r *Request) ([]byte, *failure) {
	if r == nil || r.Body == nil {
		return nil, nil
	}
	if r.Body.Key == "" {
		return []byte(r.Body.Text), nil
	}
	rc, err := f.Store.Open(ctx, r.Body.Key)
	if err != nil {
		// Final: the batch names a body that is not there (a retry would
		// not bring it).
		return nil, &failure{outcome: OutcomeError, msg: fmt.Sprintf("request body %q: %v%s", r.Body.Key, err, f.describeStore())}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxRequestBodyKey+1))
	switch {
	case err != nil:
		return nil, &failure{outcome: OutcomeError, retryable: true, msg: fmt.Sprintf("reading request body %q: %v", r.Body.Key, err)}
	case len(b) > MaxRequestBodyKey:
		return nil, &failure{outcome: OutcomeError, msg: fmt.Sprintf("request body %q is over the limit of %d bytes", r.Body.Key, MaxRequestBodyKey)}
	}
	return b, nil
}

// expand puts the values of the secrets a header names into it. secret
// tells whether it named any. Its errors name secrets, never their
// values.
func (f *Fetcher) expand(h Header, host string) (value string, secret bool, used []string, err error) {
	names := h.Secrets()
	if len(names) == 0 {
		return h.Value, false, nil, nil
	}
	if len(h.Hosts) > 0 && !HostMatches(host, h.Hosts) {
		return "", true, nil, fmt.Errorf("header %s: its secret may not be sent to %s: the batch limits it to %s", http.CanonicalHeaderKey(h.Name), host, strings.Join(h.Hosts, ", "))
	}
	values := map[string]string{}
	for _, name := range names {
		if _, done := values[name]; done {
			continue
		}
		v, err := f.secret(name, host)
		if err != nil {
			return "", true, nil, fmt.Errorf("header %s: %w", http.CanonicalHeaderKey(h.Name), err)
		}
		values[name] = v
		used = append(used, v)
	}
	value = secretRef.ReplaceAllStringFunc(h.Value, func(ref string) string {
		return values[secretRef.FindStringSubmatch(ref)[1]]
	})
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", true, nil, fmt.Errorf("header %s: a secret it names holds a control character (a line break?) on fetch worker %s", http.CanonicalHeaderKey(h.Name), f.identity())
		}
	}
	return value, true, used, nil
}

// scrub hides in msg (an error a server or the HTTP client wrote: a
// reason phrase, a Location it could not follow, a redirected URL) every
// secret value the request carried, as it is and URL-escaped, with and
// without surrounding spaces.
func scrub(msg string, values []string) string {
	for _, v := range values {
		if v == "" {
			continue
		}
		// The client trims a header value's surrounding spaces and tabs as
		// it writes it: the server saw, and may echo, the trimmed value.
		t := strings.Trim(v, " \t")
		for _, form := range []string{v, url.QueryEscape(v), url.PathEscape(v), t, url.QueryEscape(t), url.PathEscape(t)} {
			if form != "" {
				msg = strings.ReplaceAll(msg, form, "[secret]")
			}
		}
	}
	return msg
}

// keptHeaders are the response headers whose values go into results and
// checkpoints (Meta, Resume) or into what the worker logs.
var keptHeaders = []string{"Content-Type", "ETag", "Last-Modified", "Date", "Content-Encoding", "Content-Range"}

// dropEchoes removes from a response's headers those kept ones that echo
// a secret value the request carried: a result, a checkpoint or a log
// line would show it. An ETag dropped so only makes the body one that is
// neither resumed nor asked for conditionally.
func dropEchoes(h http.Header, values []string) {
	if len(values) == 0 {
		return
	}
	for _, k := range keptHeaders {
		for _, v := range h.Values(k) {
			if scrub(v, values) != v {
				h.Del(k)
				break
			}
		}
	}
}

// secret is the value of the secret name, if this worker has it and it
// may go to host.
func (f *Fetcher) secret(name, host string) (string, error) {
	if f.Secrets == nil {
		return "", fmt.Errorf("secret %s is not on fetch worker %s (it has no secrets: set BATCHFETCH_SECRET_%s or give --secrets-dir)", name, f.identity(), name)
	}
	v, hosts, ok, err := f.Secrets.Secret(name)
	switch {
	case err != nil:
		return "", fmt.Errorf("secret %s on fetch worker %s: %w", name, f.identity(), err)
	case !ok:
		return "", fmt.Errorf("secret %s is not on fetch worker %s (looked in %s)", name, f.identity(), f.Secrets.Where(name))
	case strings.TrimSpace(v) == "":
		// A file caught truncated by a rewrite in place, or left empty
		// (or blank: the client would send it trimmed to nothing).
		return "", fmt.Errorf("secret %s is empty on fetch worker %s (looked in %s)", name, f.identity(), f.Secrets.Where(name))
	case hosts != nil && !HostMatches(host, hosts):
		return "", fmt.Errorf("secret %s may not be sent to %s: fetch worker %s limits it to %s (--secret-hosts)", name, host, f.identity(), strings.Join(hosts, ", "))
	}
	return v, nil
}

func (f *Fetcher) identity() string {
	if f.Identity != "" {
		return f.Identity
	}
	return "(unnamed)"
}

// dropCredentials removes, from a redirected request to another origin
// (scheme, host or port), every header that carries credentials: those
// that named a secret, and Authorization, Cookie and
// Proxy-Authorization. Once a chain of redirects has left the first
// origin, none of them is sent again, not even back there. Go's client
// drops only some of them, and keeps them for a subdomain.
func dropCredentials(req *http.Request, via []*http.Request) {
	if len(via) == 0 {
		return
	}
	left := origin(req.URL) != origin(via[0].URL)
	for _, v := range via[1:] {
		left = left || origin(v.URL) != origin(via[0].URL)
	}
	if !left {
		return
	}
	for _, h := range alwaysCredentials {
		req.Header.Del(h)
	}
	if c, ok := req.Context().Value(credentialsKey{}).(credentials); ok {
		for _, h := range c.headers {
			req.Header.Del(h)
		}
	}
}
