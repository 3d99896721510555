package codec_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/batchfetch/batchfetch/codec"
	"github.com/batchfetch/batchfetch/devserver"
	"github.com/batchfetch/batchfetch/internal/freeport"
)

// TestWebUIDecodesWithTheSignInCookie makes the Web UI's own decode
// request, as its data-encoder sends it with includeCredentials: the
// settings come from the UI server, the browser signs in at the codec's
// /login once, and the cross-origin fetch carries the cookie, Content-Type
// and X-Namespace (so a CORS preflight first). Without the cookie, or
// from another origin, nothing is decoded.
func TestWebUIDecodesWithTheSignInCookie(t *testing.T) {
	cd, err := codec.New([]string{"ui:" + key(9)})
	if err != nil {
		t.Fatal(err)
	}
	uiPort := freeport.Run(t, 1)
	uiOrigin := fmt.Sprintf("http://localhost:%d", uiPort)
	cs := httptest.NewServer(cd.Handler("s3cret-token", []string{uiOrigin}))
	defer cs.Close()
	// The browser reaches both under one host name: the cookie is SameSite.
	endpoint := strings.Replace(cs.URL, "127.0.0.1", "localhost", 1)

	srv, err := devserver.Start(devserver.Config{UIPort: uiPort, CodecEndpoint: endpoint, CodecIncludeCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()

	// What the UI reads at start.
	resp, err := http.Get(uiOrigin + "/api/v1/settings")
	if err != nil {
		t.Fatal(err)
	}
	var settings struct {
		Codec struct {
			Endpoint           string
			IncludeCredentials bool
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&settings)
	resp.Body.Close()
	if err != nil || settings.Codec.Endpoint != endpoint || !settings.Codec.IncludeCredentials {
		t.Fatalf("the UI's codec settings: %+v (%v), want %s with credentials", settings.Codec, err, endpoint)
	}

	plain, _ := converter.GetDefaultDataConverter().ToPayload("https://example.com/a-secret-url")
	sealed, err := cd.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := protojson.Marshal(&commonpb.Payloads{Payloads: sealed})

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	decode := func(origin string) (int, []byte, http.Header) {
		t.Helper()
		// The preflight the browser sends first (custom headers, JSON).
		pre, _ := http.NewRequest(http.MethodOptions, settings.Codec.Endpoint+"/decode", nil)
		pre.Header.Set("Origin", origin)
		pre.Header.Set("Access-Control-Request-Method", "POST")
		pre.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
		resp, err := browser.Do(pre)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if origin == uiOrigin && (resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin || resp.Header.Get("Access-Control-Allow-Credentials") != "true" ||
			!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "x-namespace")) {
			t.Errorf("the preflight does not allow the UI's credentialed request: %v", resp.Header)
		}
		req, _ := http.NewRequest(http.MethodPost, settings.Codec.Endpoint+"/decode", bytes.NewReader(body))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Namespace", "default")
		resp, err = browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out, resp.Header
	}

	if code, _, _ := decode(uiOrigin); code != http.StatusUnauthorized {
		t.Errorf("before signing in: status %d, want 401", code)
	}
	// A wrong token sets no cookie.
	resp, err = browser.PostForm(endpoint+"/login", url.Values{"token": {"guess"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(jar.Cookies(resp.Request.URL)) != 0 {
		t.Fatalf("a wrong token: status %d, cookies %v", resp.StatusCode, jar.Cookies(resp.Request.URL))
	}
	// Guessing is slowed down: right after a wrong token, even the right
	// one waits.
	resp, err = browser.PostForm(endpoint+"/login", url.Values{"token": {"s3cret-token"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusTooManyRequests || wait < 1 {
		t.Fatalf("a second try right after a wrong token: %s, Retry-After %q; want 429", resp.Status, resp.Header.Get("Retry-After"))
	}
	time.Sleep(time.Duration(wait) * time.Second) // waiting out the limit is what is tested
	resp, err = browser.PostForm(endpoint+"/login", url.Values{"token": {"s3cret-token"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Signed in") {
		t.Fatalf("signing in: %s\n%s", resp.Status, page)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == codec.SessionCookie && (!ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || strings.Contains(ck.Value, "s3cret") || ck.MaxAge != 12*3600) {
			t.Errorf("the session cookie is %+v: want HttpOnly, SameSite=Strict, without the token in it", ck)
		}
	}

	code, out, hdr := decode(uiOrigin)
	if code != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != uiOrigin || hdr.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("the UI's decode: status %d, headers %v, body %s", code, hdr, out)
	}
	var decoded commonpb.Payloads
	if err := protojson.Unmarshal(out, &decoded); err != nil || len(decoded.GetPayloads()) != 1 || !bytes.Equal(decoded.GetPayloads()[0].GetData(), plain.GetData()) {
		t.Errorf("decoded %s (%v), want the plaintext payload", out, err)
	}

	// Another page of the same site carries the cookie too, but is refused
	// and gets no CORS headers, so its script could not read an answer.
	if code, _, hdr := decode("http://localhost:1"); code != http.StatusForbidden || hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("from another origin: status %d, headers %v; want 403 without CORS", code, hdr)
	}
}
