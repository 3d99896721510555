package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/workflows"
)

// parsed runs start's parsing on args, with stdin, as the starter does
// before it dials: the input it would send, or the error it would print.
func parsed(t *testing.T, stdin string, args ...string) (options, string, error) {
	t.Helper()
	var stderr bytes.Buffer
	o, urls, _, err := parseStart(args, strings.NewReader(stdin), &stderr)
	o.input.URLs = urls
	return o, stderr.String(), err
}

// sentJSON is the input as the workflow gets it, decoded generically.
func sentJSON(t *testing.T, in workflows.Input) (map[string]any, string) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m, string(b)
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The request flags make the input's headers, method and body; a
// --header-secret sends the secret's name, never a value.
func TestRequestFlagsMakeTheInput(t *testing.T) {
	t.Setenv("BATCHFETCH_SECRET_PARTNER_TOKEN", "tok-VALUE-123") // a fetch worker's; the starter never reads it
	o, stderr, err := parsed(t, "",
		"--header", "X-Trace: t-1", "--header", "X-Sig:v=${secret:SIG_KEY}", "--header-secret", "Authorization=PARTNER_TOKEN",
		"--method", "put", "--data", "hello", "--retry-non-idempotent", "http://127.0.0.1/a")
	if err != nil {
		t.Fatal(err)
	}
	if stderr != "" {
		t.Errorf("stderr %q, want nothing (no literal credential)", stderr)
	}
	m, raw := sentJSON(t, o.input)
	want := map[string]any{
		"headers":              map[string]any{"X-Trace": "t-1", "X-Sig": "v=${secret:SIG_KEY}", "Authorization": map[string]any{"secret": "PARTNER_TOKEN"}},
		"method":               "PUT",
		"body":                 "hello",
		"retry_non_idempotent": true,
		"urls":                 []any{"http://127.0.0.1/a"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(m[k], v) {
			t.Errorf("%s: %#v, want %#v", k, m[k], v)
		}
	}
	if strings.Contains(raw, "tok-VALUE") {
		t.Errorf("the input holds the secret's value: %s", raw)
	}
	// The workflow reads it back as given.
	var back workflows.Input
	if err := json.Unmarshal([]byte(raw), &back); err != nil {
		t.Fatal(err)
	}
	if _, err := back.Validate(); err != nil {
		t.Errorf("the workflow refuses it: %v", err)
	}
	if back.Headers["Authorization"].Secret != "PARTNER_TOKEN" || back.Headers["Authorization"].Value != "" {
		t.Errorf("Authorization read back as %+v", back.Headers["Authorization"])
	}
}

// --data TEXT, @FILE and @-: a text body goes in the input (a POST when
// no --method says otherwise); one over 64 KiB, or not UTF-8, goes to the
// blob store, owned by the batch.
func TestDataBodies(t *testing.T) {
	small := writeFile(t, "q.json", []byte(`{"q": "batch"}`+"\n"))
	o, _, err := parsed(t, "", "--data", "@"+small, "http://127.0.0.1/a")
	if err != nil {
		t.Fatal(err)
	}
	if o.input.Method != "POST" || o.input.Body == nil || o.input.Body.Text != `{"q": "batch"}`+"\n" {
		t.Errorf("--data @file: method %q, body %+v", o.input.Method, o.input.Body)
	}
	o, _, err = parsed(t, "from stdin", "--data", "@-", "http://127.0.0.1/a")
	if err != nil || o.input.Body == nil || o.input.Body.Text != "from stdin" {
		t.Errorf("--data @- with URLs as arguments: %v, body %+v", err, o.input.Body)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), activities.MaxBodyText/16+1)
	for name, body := range map[string][]byte{"large": big, "binary": {0xff, 0x00, 0xfe}} {
		o, _, err := parsed(t, "", "--method", "PUT", "--data", "@"+writeFile(t, name, body), "http://127.0.0.1/a")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		id := fmt.Sprintf("an-id-%s-%d", name, time.Now().UnixNano())
		store := tempStore(t)
		in := startHeld(t, o, id, store)
		m, raw := sentJSON(t, in)
		key, _ := m["body"].(map[string]any)["key"].(string)
		if !strings.HasPrefix(key, "inputs/"+id+"-") || m["remove_inputs"] != true || strings.Contains(raw, "0123456789abcdef") {
			t.Errorf("%s body: sent %.300s, want {\"key\": \"inputs/%s-...\"} and remove_inputs", name, raw, id)
			continue
		}
		if got, err := os.ReadFile(filepath.Join(store.Root, key)); err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s body in the blob store: %d bytes (%v), want the %d given", name, len(got), err, len(body))
		}
	}
}

// A --file line that starts with "{" is a URL with its own request
// fields: kept in the input inline, or written with them when the list
// goes to the blob store.
func TestJSONLinesInAURLFile(t *testing.T) {
	jsonA := `{"url": "http://127.0.0.1/a", "headers": {"X-Note": "a #1", "Authorization": {"secret": "A_TOKEN", "hosts": ["127.0.0.1"]}}}`
	jsonB := `{"url": "http://127.0.0.1/b", "method": "POST", "body": "{\"q\": 1}", "headers": {"Idempotency-Key": "k-b"}}`
	list := "# partner URLs\nhttp://127.0.0.1/plain   # a comment\n" + jsonA + "\n  " + jsonB + "\nhttp://127.0.0.1/last\n"
	o, _, err := parsed(t, "", "--header", "X-Trace: t-1", "--file", writeFile(t, "urls.txt", []byte(list)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://127.0.0.1/plain", "http://127.0.0.1/a", "http://127.0.0.1/b", "http://127.0.0.1/last"}; !reflect.DeepEqual(o.input.URLs, want) {
		t.Fatalf("urls %q, want %q", o.input.URLs, want)
	}
	r := o.input.URLRequests
	if len(r) < 3 || r[0] != nil || r[1] == nil || r[1].Headers["X-Note"].Value != "a #1" || r[2] == nil || r[2].Method != "POST" {
		t.Fatalf("URL requests %+v, want none for the plain URLs, a's with its '#', b's POST", r)
	}
	m, _ := sentJSON(t, o.input)
	urls := m["urls"].([]any)
	wantA := map[string]any{"url": "http://127.0.0.1/a", "headers": map[string]any{"X-Note": "a #1", "Authorization": map[string]any{"secret": "A_TOKEN", "hosts": []any{"127.0.0.1"}}}}
	if urls[0] != "http://127.0.0.1/plain" || !reflect.DeepEqual(urls[1], wantA) || urls[3] != "http://127.0.0.1/last" {
		t.Errorf("urls sent: %#v", urls)
	}

	// Over 1,000 URLs: the list goes to the blob store, each JSON line
	// with the fields it was given.
	var long strings.Builder
	long.WriteString(jsonA + "\n")
	for i := 0; i < workflows.InlineLimit; i++ {
		fmt.Fprintf(&long, "http://127.0.0.1/p/%d\n", i)
	}
	long.WriteString(jsonB + "\n")
	o, _, err = parsed(t, "", "--file", writeFile(t, "long.txt", []byte(long.String())))
	if err != nil {
		t.Fatal(err)
	}
	store := tempStore(t)
	in := startHeld(t, o, fmt.Sprint("long-", time.Now().UnixNano()), store)
	if in.URLsFile == "" || in.URLs != nil || in.URLRequests != nil {
		t.Fatalf("after the upload: urls_file %q, %d urls, %d URL requests inline", in.URLsFile, len(in.URLs), len(in.URLRequests))
	}
	b, err := os.ReadFile(filepath.Join(store.Root, in.URLsFile))
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if err != nil || len(lines) != workflows.InlineLimit+2 || lines[1] != "http://127.0.0.1/p/0" {
		t.Fatalf("urls_file (%v): %d lines, second %q", err, len(lines), lines[1])
	}
	// The stage step reads each line as it was meant.
	for _, c := range []struct{ line, given string }{{lines[0], jsonA}, {lines[len(lines)-1], jsonB}} {
		u, got, err := activities.ParseEntryLine(c.line)
		wantURL, want, _ := activities.ParseEntryLine(c.given)
		if err != nil || u != wantURL || !reflect.DeepEqual(got, want) {
			t.Errorf("the stage step reads %q as %q %+v (%v), want %q %+v as given", c.line, u, got, err, wantURL, want)
		}
	}
}

// startHeld starts o's batch as the starter does, under workflow ID id
// and on a task queue no worker polls, so that it waits with its inputs
// in store. It returns the input the batch was started with; the batch
// is terminated when the test ends.
func startHeld(t *testing.T, o options, id string, store blobstore.Store) workflows.Input {
	t.Helper()
	ctx := context.Background()
	o.store, o.id, o.taskQueue = store, id, "held-"+id
	o.batches = newBatches(testStack.Client, store, o.taskQueue, nil)
	opts, previous, err := o.startOptions()
	if err != nil {
		t.Fatal(err)
	}
	if previous != nil {
		defer previous.f.Close()
	}
	b, err := o.batches.Start(ctx, o.input, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = testStack.Client.TerminateWorkflow(context.Background(), b.ID(), b.RunID(), "the test is over")
	})
	in, err := b.Input(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// tempStore is a blob directory of the test's own.
func tempStore(t *testing.T) *blobstore.Dir {
	t.Helper()
	store, err := blobstore.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// Bad request flags and lines are usage errors that name the flag, the
// header or the line, and never a header's value.
func TestRequestFlagErrors(t *testing.T) {
	u := "http://127.0.0.1/a"
	file := func(lines ...string) string {
		return writeFile(t, "urls.txt", []byte(strings.Join(lines, "\n")+"\n"))
	}
	badField := file(u, `{"url": "`+u+`", "hedaers": {}}`)
	owned := file(`{"url": "` + u + `", "headers": {"Content-Length": "3"}}`)
	getBody := file(u, u, `{"url": "`+u+`", "body": "s3cr3t"}`)
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"--header", "X-A: s3cr3t", "--header", "x-a: s3cr3t", u}, "--header X-A: the header is given twice (first with --header)"},
		{"", []string{"--header", "Authorization: s3cr3t", "--header-secret", "authorization=TOKEN", u}, "--header-secret Authorization: the header is given twice (first with --header)"},
		{"", []string{"--header", "X-A s3cr3t", u}, "--header (the 1st one): want 'Name: value'"},
		{"", []string{"--header", "X-B: 1", "--header-secret", "Authorization", u}, "--header-secret (the 2nd one): want 'Name=SECRET_NAME'"},
		{"", []string{"--header-secret", "Authorization=1bad", u}, `--header-secret Authorization: secret name "1bad": want letters, digits and '_'`},
		{"", []string{"--header", "X-A: Bearer ${secret:bad-name}", u}, `--header: X-A: secret name "bad-name"`},
		{"", []string{"--header", "Host: s3cr3t", u}, "--header: Host: batchfetch sends this header itself (set from the URL)"},
		{"", []string{"--header", "Bad Name: s3cr3t", u}, `--header: "Bad Name" is not a header name`},
		{"", []string{"--method", "FETCH", u}, `--method: "FETCH" is not one of GET, HEAD, POST, PUT`},
		{"", []string{"--method", "GET", "--data", "s3cr3t", u}, "--data with --method GET: body: only a POST or a PUT sends one (method is GET)"},
		{"", []string{"--data", "@" + filepath.Join(t.TempDir(), "none.json"), u}, "--data: open "},
		{u + "\n", []string{"--data", "@-"}, "--data @-: the URLs are read from stdin"},
		{u + "\n", []string{"--data", "@-", "--file", "-"}, "--data @-: the URLs are read from stdin"},
		{"", []string{"--file", badField}, "invalid input: " + badField + " line 2: want a URL or an object {\"url\", \"headers\", \"method\", \"body\"}: unknown field \"hedaers\""},
		{"", []string{"--file", owned}, "invalid input: " + owned + " line 1: headers: Content-Length: batchfetch sends this header itself"},
		{"", []string{"--file", getBody}, "invalid input: " + getBody + " line 3: body: only a POST or a PUT sends one (method is GET)"},
		{"", []string{"--file", file(`{"url": "` + u + `", "headers": {"X-A": "1"}`)}, "line 1: unexpected end of JSON input"},
	} {
		_, _, err := parsed(t, tc.stdin, tc.args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error with %q", tc.args, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: the error shows a value: %v", tc.args, err)
		}
	}
}

// A literal credential in --header is allowed, with a warning that names
// the header and not its value.
func TestLiteralCredentialWarns(t *testing.T) {
	for _, tc := range []struct {
		header, warn string
	}{
		{"Authorization: Bearer s3cr3t", "starter: warning: --header Authorization: this value will be stored in workflow history; use --header-secret Authorization=SECRET_NAME\n"},
		{"X-Upstream: basic s3cr3t", "starter: warning: --header X-Upstream: this value will be stored in workflow history; use --header-secret X-Upstream=SECRET_NAME\n"},
		{"Authorization: Bearer ${secret:TOKEN}", ""},
		{"X-Trace: t-1", ""},
	} {
		o, stderr, err := parsed(t, "", "--header", tc.header, "http://127.0.0.1/a")
		if err != nil || stderr != tc.warn {
			t.Errorf("--header %q: %v, stderr %q, want %q", tc.header, err, stderr, tc.warn)
		}
		if len(o.input.Headers) != 1 {
			t.Errorf("--header %q: headers %v", tc.header, o.input.Headers)
		}
	}
}

// A schedule's runs share its input: a body too large for it is refused
// before anything is created; an attached batch names the request
// settings it runs with when they are not these.
func TestScheduleBodyAndAttachedSettings(t *testing.T) {
	big := writeFile(t, "big", bytes.Repeat([]byte("x"), activities.MaxBodyText+1))
	var stdout, stderr bytes.Buffer
	err := runSchedule([]string{"create", "--id", "s", "--every", "1h", "--data", "@" + big, "http://127.0.0.1/a"}, strings.NewReader(""), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "--data: a schedule's body must be UTF-8 text of at most 65536 bytes (this one: 65537 bytes)") {
		t.Errorf("schedule create with a large body: %v", err)
	}
	theirs := workflows.Input{RequestFields: activities.RequestFields{Method: "POST", Headers: map[string]activities.HeaderValue{"X-A": {Value: "1"}}}}
	if got, want := settingsDiffer(theirs, workflows.Input{}), "method POST there, GET here, headers [X-A] there, [] here"; got != want {
		t.Errorf("settingsDiffer: %q, want %q", got, want)
	}
}
