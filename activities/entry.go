package activities

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
)

// HeaderValue is a header's value as a batch's JSON gives it: a string
// (which may hold ${secret:NAME} references), or an object naming a
// secret whose value is the whole header value, optionally limited to
// hosts: {"secret": "PARTNER_TOKEN", "hosts": ["api.example.com"]}.
type HeaderValue struct {
	Value  string
	Secret string
	Hosts  []string
}

// UnmarshalJSON reads a string or a {"secret", "hosts"} object.
func (v *HeaderValue) UnmarshalJSON(b []byte) error {
	*v = HeaderValue{}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &v.Value)
	}
	var o struct {
		Secret *string  `json:"secret"`
		Hosts  []string `json:"hosts"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil || o.Secret == nil {
		return fmt.Errorf(`headers: a value is neither a string nor {"secret": "NAME"}`)
	}
	if *o.Secret == "" {
		return fmt.Errorf(`headers: {"secret": ""} names no secret`)
	}
	if o.Hosts != nil && len(o.Hosts) == 0 {
		return fmt.Errorf(`headers: "hosts": [] lists no host (leave it out to allow any)`)
	}
	v.Secret, v.Hosts = *o.Secret, o.Hosts
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (v HeaderValue) MarshalJSON() ([]byte, error) {
	if v.Secret == "" {
		return json.Marshal(v.Value)
	}
	return json.Marshal(struct {
		Secret string   `json:"secret"`
		Hosts  []string `json:"hosts,omitempty"`
	}{v.Secret, v.Hosts})
}

// BodyValue is a request body as JSON gives it: a string, or the blob
// store key of a larger body: {"key": "inputs/query.json"}.
type BodyValue struct {
	Text string
	Key  string
}

// UnmarshalJSON reads a string or a {"key"} object.
func (v *BodyValue) UnmarshalJSON(b []byte) error {
	*v = BodyValue{}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &v.Text)
	}
	var o struct {
		Key *string `json:"key"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil || o.Key == nil {
		return fmt.Errorf(`body: neither a string nor {"key": "a blob store key"}`)
	}
	v.Key = *o.Key
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (v BodyValue) MarshalJSON() ([]byte, error) {
	if v.Key != "" {
		return json.Marshal(struct {
			Key string `json:"key"`
		}{v.Key})
	}
	return json.Marshal(v.Text)
}

// HeaderMap is a request's headers by name. In JSON, a name given twice
// (the same spelling, or the same name in other case) is refused, not
// silently kept once.
type HeaderMap map[string]HeaderValue

// UnmarshalJSON reads an object, refusing a name given twice.
func (m *HeaderMap) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
			*m = nil
			return nil
		}
		return fmt.Errorf("headers: want an object of names and values")
	}
	out := HeaderMap{}
	seen := map[string]string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("headers: %s", jsonReason(err))
		}
		name, _ := t.(string)
		canon := http.CanonicalHeaderKey(name)
		if other, ok := seen[canon]; ok {
			return fmt.Errorf("headers: %q and %q are the same header", clip(other), clip(name))
		}
		seen[canon] = name
		var v HeaderValue
		if err := dec.Decode(&v); err != nil {
			return err
		}
		out[name] = v
	}
	*m = out
	return nil
}

// RequestFields are the fields that say how a URL is asked for, on a
// batch and on a URL's own entry.
type RequestFields struct {
	Headers            HeaderMap  `json:"headers,omitempty"`
	Method             string     `json:"method,omitempty"`
	Body               *BodyValue `json:"body,omitempty"`
	RetryNonIdempotent bool       `json:"retry_non_idempotent,omitempty"`
}

// Empty tells whether the fields ask for nothing but a bare GET.
func (f RequestFields) Empty() bool {
	return len(f.Headers) == 0 && f.Method == "" && f.Body == nil && !f.RetryNonIdempotent
}

// Request checks the fields and turns them into a Request (nil for a
// bare GET). Headers are in name order, so that a workflow builds the
// same Request on every replay.
func (f RequestFields) Request() (*Request, error) {
	if f.Empty() {
		return nil, nil
	}
	r := &Request{Method: strings.ToUpper(f.Method), RetryUnsafe: f.RetryNonIdempotent}
	if f.Method != "" && r.Method != f.Method {
		return nil, fmt.Errorf("method: %q: write it in capitals (%s)", clip(f.Method), r.Method)
	}
	// In name order: the same on every replay.
	names := slices.Sorted(maps.Keys(f.Headers)) //workflowcheck:ignore
	seen := map[string]string{}
	for _, k := range names {
		canon := http.CanonicalHeaderKey(k)
		if other, ok := seen[canon]; ok {
			return nil, fmt.Errorf("headers: %q and %q are the same header", other, k)
		}
		seen[canon] = k
		v := f.Headers[k]
		h := Header{Name: k, Value: v.Value, Hosts: v.Hosts}
		if v.Secret != "" {
			if err := CheckSecretName(v.Secret); err != nil {
				return nil, fmt.Errorf("headers: %s: %w", canon, err)
			}
			h.Value = SecretRef(v.Secret)
		}
		r.Headers = append(r.Headers, h)
	}
	if f.Body != nil {
		if f.Body.Key != "" {
			if err := CheckKey(f.Body.Key); err != nil {
				return nil, fmt.Errorf("body: key: %w", err)
			}
		}
		r.Body = &Body{Text: f.Body.Text, Key: f.Body.Key}
	}
	if err := CheckRequest(r); err != nil {
		return nil, err
	}
	return r, nil
}

// URLEntry is one entry of a batch's URLs as JSON gives it: a URL, or an
// object with the URL and how to ask for it ({"url", "headers", "method",
// "body", "retry_non_idempotent"}). A urls_file line that starts with "{"
// is one such object.
type URLEntry struct {
	URL string `json:"url"`
	RequestFields
}

// UnmarshalJSON reads a string or an object.
func (e *URLEntry) UnmarshalJSON(b []byte) error {
	*e = URLEntry{}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &e.URL)
	}
	type plain URLEntry
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("want a URL or an object {\"url\", \"headers\", \"method\", \"body\"}: %s", jsonReason(err))
	}
	if p.URL == "" {
		return fmt.Errorf(`an entry object needs its "url"`)
	}
	*e = URLEntry(p)
	return nil
}

// MarshalJSON writes a plain URL as a string.
func (e URLEntry) MarshalJSON() ([]byte, error) {
	if e.RequestFields.Empty() {
		return json.Marshal(e.URL)
	}
	type plain URLEntry
	return json.Marshal(plain(e))
}

// ParseEntryLine reads a urls_file line that is a JSON object.
func ParseEntryLine(line string) (string, *Request, error) {
	var e URLEntry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return "", nil, err
	}
	if e.URL == "" {
		return "", nil, fmt.Errorf(`want an object with its "url"`)
	}
	r, err := e.RequestFields.Request()
	return e.URL, r, err
}

func jsonReason(err error) string {
	s := err.Error()
	if f, ok := strings.CutPrefix(s, "json: unknown field "); ok {
		return "unknown field " + f
	}
	return strings.TrimPrefix(s, "json: ")
}

// CheckKey accepts a relative, clean, slash-separated blob store key.
func CheckKey(k string) error {
	if k == "" || len(k) > 1024 || strings.HasPrefix(k, "/") || strings.Contains(k, "\\") || path.Clean(k) != k || k == ".." || strings.HasPrefix(k, "../") {
		return fmt.Errorf("%q is not a key in the blob store (a relative path such as \"inputs/body.json\")", clip(k))
	}
	return nil
}
