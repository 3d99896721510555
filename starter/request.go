package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/workflows"
)

// requestFlags are the flags that say how every URL of a batch is asked
// for. They are checked, once all are read, by finish.
type requestFlags struct {
	headers []headerArg // --header and --header-secret, in the order given
	data    *string     // --data as given (nil: none)
	method  string
	// body is a --data too large (or not text) to go in the input: it
	// goes to the blob store, and the input names its key.
	body []byte
}

// headerArg is one --header ('Name: value') or --header-secret
// ('Name=SECRET') as given.
type headerArg struct {
	flag, arg string
}

// pendingBodyKey stands for the key of a body not yet in the blob store,
// while the input is checked.
const pendingBodyKey = "inputs/body"

// credentialHeaders are headers whose literal value is a credential.
var credentialHeaders = map[string]bool{"Authorization": true, "Cookie": true, "X-Api-Key": true, "X-Auth-Token": true}

func (o *options) requestFlags(fs *flag.FlagSet) {
	header := func(name string) func(string) error {
		return func(v string) error {
			o.req.headers = append(o.req.headers, headerArg{name, v})
			return nil // checked by finish, which never repeats a value
		}
	}
	fs.Func("header", "a request header, `'Name: value'` (repeatable). The value is kept in workflow history: give credentials with --header-secret, or as ${secret:NAME} in the value (a secret of the fetch workers)", header("header"))
	fs.Func("header-secret", "a request header whose whole value is a secret of the fetch workers, `'Name=SECRET'` (repeatable), such as 'Authorization=PARTNER_TOKEN': the workers put the value in (BATCHFETCH_SECRET_PARTNER_TOKEN or their --secrets-dir); only the name goes in the input", header("header-secret"))
	fs.StringVar(&o.req.method, "method", "", "the request method, `METHOD`: GET, HEAD, POST or PUT (default GET, or POST with --data)")
	fs.Func("data", "the request body: `TEXT`, @FILE (sent as it is) or @- (stdin, when the URLs do not come from it); a body over 64 KiB goes through the blob store", func(v string) error {
		o.req.data = &v
		return nil
	})
	fs.BoolVar(&o.input.RetryNonIdempotent, "retry-non-idempotent", false, "retry a failed POST like a GET (by default a POST is retried only with an Idempotency-Key header)")
}

// finish checks the request flags and puts them in the input. stdin is
// the --data of @-, unless the URLs come from it (urlsOnStdin).
// Warnings go to stderr; scheduled: for a schedule, whose runs share
// their input, a body must fit in it.
func (o *options) finishRequest(stdin io.Reader, urlsOnStdin, scheduled bool, stderr io.Writer) error {
	usage := func(err error) error { return &exitError{exitUsage, err} }
	if err := o.headersInto(stderr); err != nil {
		return usage(err)
	}
	o.input.Method = strings.ToUpper(o.req.method)
	if err := o.bodyInto(stdin, urlsOnStdin, scheduled); err != nil {
		return usage(err)
	}
	batch, err := o.input.RequestFields.Request()
	if err != nil {
		return usage(flagError(err))
	}
	if err := activities.CheckMerged(batch); err != nil {
		return usage(fmt.Errorf("--data with --method %s: %w", o.input.Method, err))
	}
	return nil
}

// flagError names the flag at fault for an error of
// RequestFields.Request, in place of the input's field.
func flagError(err error) error {
	s := err.Error()
	for field, flag := range map[string]string{"method: ": "--method: ", "body: ": "--data: ", "headers: ": "--header: "} {
		if rest, ok := strings.CutPrefix(s, field); ok {
			return errors.New(flag + rest)
		}
	}
	return err
}

// headersInto reads the --header and --header-secret flags into the
// input's headers. Its errors name a header, never a value.
func (o *options) headersInto(stderr io.Writer) error {
	if len(o.req.headers) == 0 {
		return nil
	}
	o.input.Headers = map[string]activities.HeaderValue{}
	given := map[string]string{}
	for i, h := range o.req.headers {
		sep := ":"
		if h.flag == "header-secret" {
			sep = "="
		}
		name, value, ok := strings.Cut(h.arg, sep)
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(value)
		if !ok || name == "" {
			want := "'Name: value'"
			if h.flag == "header-secret" {
				want = "'Name=SECRET_NAME'"
			}
			return fmt.Errorf("--%s (the %s one): want %s", h.flag, ordinal(i+1), want)
		}
		canon := http.CanonicalHeaderKey(name)
		if first, ok := given[canon]; ok {
			return fmt.Errorf("--%s %s: the header is given twice (first with --%s)", h.flag, canon, first)
		}
		given[canon] = h.flag
		v := activities.HeaderValue{Value: value}
		if h.flag == "header-secret" {
			if err := activities.CheckSecretName(value); err != nil {
				return fmt.Errorf("--header-secret %s: %w", canon, err)
			}
			v = activities.HeaderValue{Secret: value}
		}
		if err := activities.CheckHeader(activities.Header{Name: name, Value: v.Value}); err != nil {
			return fmt.Errorf("--%s: %w", h.flag, err)
		}
		if h.flag == "header" && looksLikeCredential(canon, value) {
			fmt.Fprintf(stderr, "starter: warning: --header %s: this value will be stored in workflow history; use --header-secret %s=SECRET_NAME\n", canon, canon)
		}
		o.input.Headers[name] = v
	}
	return nil
}

// looksLikeCredential tells whether a literal header value is likely a
// credential: that of an Authorization header, a cookie, a bearer token.
func looksLikeCredential(canon, value string) bool {
	if strings.Contains(value, "${secret:") {
		return false
	}
	lower := strings.ToLower(value)
	return credentialHeaders[canon] || strings.HasPrefix(lower, "bearer ") || strings.HasPrefix(lower, "basic ")
}

// bodyInto reads --data into the input: as text, or, too large for it or
// not UTF-8 text, to be uploaded (uploadInputs). A --data without
// --method is a POST, as with curl.
func (o *options) bodyInto(stdin io.Reader, urlsOnStdin, scheduled bool) error {
	if o.req.data == nil {
		return nil
	}
	if o.input.Method == "" {
		o.input.Method = http.MethodPost
	}
	data := []byte(*o.req.data)
	if path, ok := strings.CutPrefix(*o.req.data, "@"); ok {
		var err error
		if data, err = readBody(path, stdin, urlsOnStdin); err != nil {
			return err
		}
	}
	if len(data) <= activities.MaxBodyText && utf8.Valid(data) {
		o.input.Body = &activities.BodyValue{Text: string(data)}
		return nil
	}
	if scheduled {
		return fmt.Errorf("--data: a schedule's body must be UTF-8 text of at most %d bytes (this one: %d bytes)", activities.MaxBodyText, len(data))
	}
	o.req.body = data
	o.input.Body = &activities.BodyValue{Key: pendingBodyKey}
	return nil
}

// readBody reads the body of --data @path ('-': stdin).
func readBody(path string, stdin io.Reader, urlsOnStdin bool) ([]byte, error) {
	var r io.Reader
	switch {
	case path == "-" && urlsOnStdin:
		return nil, errors.New("--data @-: the URLs are read from stdin; give them as arguments or with --file FILE, or the body with --data @FILE")
	case path == "-":
		r = stdin
	default:
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, activities.MaxRequestBodyKey+1))
	if err != nil {
		return nil, fmt.Errorf("--data @%s: %w", path, err)
	}
	if len(b) > activities.MaxRequestBodyKey {
		return nil, fmt.Errorf("--data @%s: over the limit of %d bytes", path, activities.MaxRequestBodyKey)
	}
	return b, nil
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

// bodyKey is the blob store key of an input's body, if it names one.
func bodyKey(in workflows.Input) string {
	if in.Body == nil {
		return ""
	}
	return in.Body.Key
}

// headerNames are a request's header names, in order, for messages.
func headerNames(r *activities.Request) []string {
	if r == nil {
		return nil
	}
	return r.SortedHeaderNames()
}
