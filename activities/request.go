package activities

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
)

// Request is how a URL is asked for, when not with a bare GET: the method,
// headers and body its batch gives, and those of the URL's own entry
// (MergeRequests). A header value may name secrets (${secret:NAME}): the
// fetch worker puts their values in at request time, so that no value is
// ever in workflow history.
type Request struct {
	// Method is GET (""), HEAD, POST or PUT.
	Method  string   `json:"m,omitempty"`
	Headers []Header `json:"h,omitempty"`
	Body    *Body    `json:"b,omitempty"`
	// RetryUnsafe: a POST is retried like a GET (the batch says retrying
	// it is safe). A POST with an Idempotency-Key header is retried too.
	RetryUnsafe bool `json:"ru,omitempty"`
}

// Header is one request header. Its value may hold secret references
// (${secret:NAME}); Hosts, when set, limits where those secrets may be
// sent, beside the fetch worker's own limits.
type Header struct {
	Name  string   `json:"n"`
	Value string   `json:"v"`
	Hosts []string `json:"hosts,omitempty"`
}

// Body is a request's body: Text, or the blob store key of a larger one.
type Body struct {
	Text string `json:"text,omitempty"`
	Key  string `json:"key,omitempty"`
}

// Limits on a request.
const (
	MaxHeaders        = 64
	MaxHeaderValue    = 8 << 10
	MaxHeaderBytes    = 32 << 10
	MaxBodyText       = 64 << 10
	MaxRequestBodyKey = 64 << 20 // a body read from the blob store
	// MaxEntryLine bounds a line of a urls_file or of a staged chunk's
	// file: a URL and its request, as JSON writes them (where <, > and &
	// take six bytes each).
	MaxEntryLine = 6*(MaxURLLength+MaxHeaderBytes+MaxBodyText) + 4096
)

// Methods a batch may use.
var methods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true}

// Headers the fetcher owns: hop-by-hop ones, those that frame the
// message, and those it sends itself for conditional requests and resumed
// downloads. Proxy-Authorization is the worker's (its --proxy secret).
var ownedHeaders = map[string]string{
	"Connection": "hop-by-hop", "Keep-Alive": "hop-by-hop", "Proxy-Connection": "hop-by-hop",
	"Te": "hop-by-hop", "Trailer": "hop-by-hop", "Transfer-Encoding": "hop-by-hop", "Upgrade": "hop-by-hop",
	"Host": "set from the URL", "Content-Length": "set from the body",
	"Range": "set to resume a download", "If-Range": "set to resume a download",
	"If-None-Match": "set from earlier results (previous)", "If-Modified-Since": "set from earlier results (previous)",
	"Proxy-Authorization": "the fetch worker's (--proxy)", "Expect": "not supported",
}

// secretRef is a reference to a secret in a header value.
var secretRef = regexp.MustCompile(`\$\{secret:([^}]*)\}`)

// secretName is what a secret may be called: a name that is also the end
// of an environment variable (BATCHFETCH_SECRET_<NAME>) and a file name.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// CheckSecretName says what is wrong with a secret's name, or nil.
func CheckSecretName(name string) error {
	if !secretName.MatchString(name) {
		return fmt.Errorf("secret name %q: want letters, digits and '_' (not starting with a digit), at most 128", clip(name))
	}
	return nil
}

// Secrets lists the secret names a header value refers to.
func (h Header) Secrets() []string {
	var out []string
	for _, m := range secretRef.FindAllStringSubmatch(h.Value, -1) {
		out = append(out, m[1])
	}
	return out
}

// SecretRef is the header value that is the whole of secret name.
func SecretRef(name string) string { return "${secret:" + name + "}" }

// CheckHeader says what is wrong with a header a batch gives, or nil.
func CheckHeader(h Header) error {
	name := http.CanonicalHeaderKey(h.Name)
	if !validToken(h.Name) {
		return fmt.Errorf("%q is not a header name", clip(h.Name))
	}
	if why, ok := ownedHeaders[name]; ok {
		return fmt.Errorf("%s: batchfetch sends this header itself (%s)", name, why)
	}
	if len(h.Value) > MaxHeaderValue {
		return fmt.Errorf("%s: value of %d bytes is over the limit of %d", name, len(h.Value), MaxHeaderValue)
	}
	for i := 0; i < len(h.Value); i++ {
		if c := h.Value[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("%s: the value holds a control character (byte %d)", name, i)
		}
	}
	if strings.Contains(strings.ReplaceAll(h.Value, "${secret:", ""), "${secret") {
		return fmt.Errorf("%s: a secret reference is written ${secret:NAME}", name)
	}
	for _, s := range h.Secrets() {
		if err := CheckSecretName(s); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if len(h.Hosts) > 0 && len(h.Secrets()) == 0 {
		return fmt.Errorf("%s: hosts limit where a secret goes, and the value names none", name)
	}
	for _, host := range h.Hosts {
		if err := CheckHostPattern(host); err != nil {
			return fmt.Errorf("%s: hosts: %w", name, err)
		}
	}
	return nil
}

// CheckHostPattern says what is wrong with a host a secret may go to: a
// host name, an address, or *.domain for the domain's subdomains.
func CheckHostPattern(p string) error {
	q, wild := strings.CutPrefix(p, "*.")
	if _, err := netip.ParseAddr(strings.Trim(q, "[]")); err == nil && !wild {
		return nil
	}
	ok := q != "" && len(q) <= 253
	for _, r := range q {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}
	if !ok {
		return fmt.Errorf("%q is not a host name (api.example.com), an address or *.example.com", clip(p))
	}
	return nil
}

// HostMatches tells whether host (a URL's hostname) is one of patterns.
func HostMatches(host string, patterns []string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSuffix(strings.Trim(p, "[]"), "."))
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}

// CheckRequest says what is wrong with a request, or nil; where names it
// in the message ("headers", "urls[3]").
func CheckRequest(r *Request) error {
	if r == nil {
		return nil
	}
	if r.Method != "" && !methods[r.Method] {
		return fmt.Errorf("method: %q is not one of GET, HEAD, POST, PUT", clip(r.Method))
	}
	if len(r.Headers) > MaxHeaders {
		return fmt.Errorf("headers: %d headers is over the limit of %d", len(r.Headers), MaxHeaders)
	}
	total, seen := 0, map[string]bool{}
	for _, h := range r.Headers {
		if err := CheckHeader(h); err != nil {
			return fmt.Errorf("headers: %w", err)
		}
		name := http.CanonicalHeaderKey(h.Name)
		if seen[name] {
			return fmt.Errorf("headers: %s is given twice", name)
		}
		seen[name] = true
		total += len(h.Name) + len(h.Value)
	}
	if total > MaxHeaderBytes {
		return fmt.Errorf("headers: %d bytes in all is over the limit of %d", total, MaxHeaderBytes)
	}
	if b := r.Body; b != nil {
		switch {
		case b.Text != "" && b.Key != "":
			return fmt.Errorf("body: give text or a key, not both")
		case len(b.Text) > MaxBodyText:
			return fmt.Errorf("body: %d bytes of text is over the limit of %d (put a larger body in the blob store and give its key)", len(b.Text), MaxBodyText)
		}
	}
	return nil
}

// CheckMerged says what is wrong with a URL's request as it will be sent
// (the batch's and its own, merged), or nil.
func CheckMerged(r *Request) error {
	if r == nil {
		return nil
	}
	if r.Body != nil && (r.Body.Text != "" || r.Body.Key != "") && (r.Method == "" || r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return fmt.Errorf("body: only a POST or a PUT sends one (method is %s)", r.method())
	}
	return nil
}

// MergeRequests is the request of a URL whose batch asks for batch and
// whose own entry for own: the URL's own method, body and headers win
// over the batch's, header by header (names compared without case).
func MergeRequests(batch, own *Request) *Request {
	switch {
	case own == nil:
		return batch
	case batch == nil:
		return own
	}
	out := *batch
	if own.Method != "" {
		out.Method = own.Method
	}
	if own.Body != nil {
		out.Body = own.Body
	}
	out.RetryUnsafe = batch.RetryUnsafe || own.RetryUnsafe
	mine := map[string]bool{}
	for _, h := range own.Headers {
		mine[http.CanonicalHeaderKey(h.Name)] = true
	}
	out.Headers = nil
	for _, h := range batch.Headers {
		if !mine[http.CanonicalHeaderKey(h.Name)] {
			out.Headers = append(out.Headers, h)
		}
	}
	out.Headers = append(out.Headers, own.Headers...)
	return &out
}

// method is the request's method (GET by default).
func (r *Request) method() string {
	if r == nil || r.Method == "" {
		return http.MethodGet
	}
	return r.Method
}

// Verb is the request's method, for summaries: GET by default.
func (r *Request) Verb() string { return r.method() }

// retriable tells whether a failed attempt may be made again: always for
// GET, HEAD and PUT (idempotent), for a POST only when the batch says so
// or it carries an Idempotency-Key.
func (r *Request) retriable() bool {
	if r.method() != http.MethodPost || r.RetryUnsafe {
		return true
	}
	for _, h := range r.Headers {
		if http.CanonicalHeaderKey(h.Name) == "Idempotency-Key" {
			return true
		}
	}
	return false
}

// Retriable is retriable, for the workflow's retry policy of a URL.
func (r *Request) Retriable() bool { return r == nil || r.retriable() }

// plain tells whether a request may be conditional and resumed: a GET.
func (r *Request) plain() bool { return r.method() == http.MethodGet }

// SortedHeaderNames lists the request's header names, for messages.
func (r *Request) SortedHeaderNames() []string {
	var out []string
	for _, h := range r.Headers {
		out = append(out, http.CanonicalHeaderKey(h.Name))
	}
	sort.Strings(out)
	return out
}

func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// withRequests gives each task the request it is made with: the batch's
// merged with its own.
func withRequests(tasks []URLTask, batch *Request) []URLTask {
	for i := range tasks {
		tasks[i].R = MergeRequests(batch, tasks[i].R)
	}
	return tasks
}

// unsafeNoSpace is the final word on a POST that may not be retried
// whose answer found no room on the blob disk: the server has had it, so
// it is not made again when there is room.
func unsafeNoSpace(r *Request, fail *failure) *failure {
	return &failure{outcome: OutcomeError, status: fail.status, msg: r.Verb() + " not made again: no room on the blob disk for its answer (" + fail.msg + "); allow retries with retry_non_idempotent or an Idempotency-Key header"}
}

// unsafeCutOff is the word on a POST that may not be retried, whose
// attempt was cut off (its worker lost or stopped): it may have reached
// the server, so it is not made again.
func unsafeCutOff(r *Request) string {
	return r.Verb() + " not retried: its attempt was cut off (worker lost or stopped) and may have reached the server; allow retries with retry_non_idempotent or an Idempotency-Key header"
}

// Names a fetch worker that knows requests (headers, secrets, methods,
// bodies) also takes FetchChunk and FetchURL under. A batch whose URLs
// are not asked for with a bare GET calls them by these names, so that a
// worker of an earlier release, which would ignore the request and send
// a bare GET, does not know the activity and gives the attempt back to
// be retried on a worker that does (an unversioned rolling deploy).
const (
	FetchChunkWithRequest = "FetchChunkWithRequest"
	FetchURLWithRequest   = "FetchURLWithRequest"
)

// Asked tells whether any of tasks, or their batch, is asked for
// otherwise than with a bare GET.
func Asked(batch *Request, tasks []URLTask) bool {
	if batch != nil {
		return true
	}
	for _, t := range tasks {
		if t.R != nil {
			return true
		}
	}
	return false
}

// RegisterFetcher registers f's activities on a worker, also under the
// names batches with requests call them by (FetchChunkWithRequest,
// FetchURLWithRequest) and those that obey robots.txt
// (FetchChunkObeyingRobots, FetchURLObeyingRobots), and the check of the
// batch's search attributes (SearchAttributesActivity). A worker that registers f with
// RegisterActivity alone fails those batches' fetches and leaves the
// counts out of the Web UI's list. (Not a method: every exported method
// of a Fetcher is an activity.)
func RegisterFetcher(w worker.ActivityRegistry, f *Fetcher) {
	w.RegisterActivity(f)
	// Functions of their own: the SDK resolves a workflow's
	// ExecuteActivity(f.FetchChunk) by the name registered last for that
	// function, which would make every batch call FetchChunkWithRequest.
	w.RegisterActivityWithOptions(func(ctx context.Context, req FetchChunkRequest) (*FetchChunkResult, error) {
		return f.FetchChunk(ctx, req)
	}, activity.RegisterOptions{Name: FetchChunkWithRequest})
	w.RegisterActivityWithOptions(func(ctx context.Context, req FetchChunkRequest) (*FetchChunkResult, error) {
		return f.FetchChunk(ctx, req)
	}, activity.RegisterOptions{Name: FetchChunkPerHost})
	w.RegisterActivityWithOptions(func(ctx context.Context, req FetchURLRequest) (*FetchChunkResult, error) {
		return f.FetchURL(ctx, req)
	}, activity.RegisterOptions{Name: FetchURLWithRequest})
	registerRobots(w, f)
	w.RegisterActivityWithOptions(searchAttributes, activity.RegisterOptions{Name: SearchAttributesActivity})
}
