package process

import (
	"bytes"
	"context"
	"image"
	"image/gif"
	"image/png"
	"strings"
	"testing"
)

func runHTML(t *testing.T, page string) HTMLResult {
	t.Helper()
	v, err := HTML{}.Process(context.Background(), strings.NewReader(page), Info{URL: "http://127.0.0.1/d/page?q=1", ContentType: "text/html"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v.(HTMLResult)
}

// The html step reads a page as a browser would: the first <base> counts
// for links before it too, a <title> in <svg> is not the page's, a base
// that is not http(s) is ignored, backslashes are slashes, and hrefs too
// long to be links are left out.
func TestHTMLReadsLikeABrowser(t *testing.T) {
	for _, tc := range []struct {
		name, page, title string
		links             []string
	}{
		{"base after a link", `<a href="a1">1</a><base href="http://127.0.0.1/b/"><a href="a2">2</a>`, "",
			[]string{"http://127.0.0.1/b/a1", "http://127.0.0.1/b/a2"}},
		{"svg title", `<svg><title>icon</title></svg><title>Real</title>`, "Real", nil},
		{"javascript base", `<base href="javascript:alert(1)"><a href="x">x</a>`, "", []string{"http://127.0.0.1/d/x"}},
		{"backslashes", `<a href="\\other.example\x">x</a><a href="y\z">y</a>`, "",
			[]string{"http://other.example/x", "http://127.0.0.1/d/y/z"}},
		{"long href", `<a href="/` + strings.Repeat("x", MaxHref) + `">long</a><a href="/ok">ok</a>`, "", []string{"http://127.0.0.1/ok"}},
		{"query-relative", `<a href="?page=2">next</a>`, "", []string{"http://127.0.0.1/d/page?page=2"}},
	} {
		got := runHTML(t, tc.page)
		if got.Title != tc.title || strings.Join(got.Links, " ") != strings.Join(tc.links, " ") {
			t.Errorf("%s: got %+v, want title %q links %v", tc.name, got, tc.title, tc.links)
		}
	}
}

// Many long distinct hrefs keep the step's memory bounded: at most
// MaxLinks links, and the answer says it was cut.
func TestHTMLManyLinksAreCapped(t *testing.T) {
	var b strings.Builder
	for i := range 3 * MaxLinks {
		b.WriteString(`<a href="/` + strings.Repeat("p", 1500) + "/" + string(rune('a'+i%26)) + strings.Repeat("q", i%50) + `">l</a>`)
	}
	got := runHTML(t, b.String())
	if len(got.Links) > MaxLinks || !got.Truncated && len(got.Links) == MaxLinks {
		t.Errorf("%d links, truncated %v", len(got.Links), got.Truncated)
	}
}

// Images cut short say so, whatever their format.
func TestImageCutShort(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 3))
	var p, g bytes.Buffer
	_ = png.Encode(&p, img)
	_ = gif.Encode(&g, img, nil)
	for name, b := range map[string][]byte{"png": p.Bytes()[:20], "gif": g.Bytes()[:10]} {
		_, err := Image{}.Process(context.Background(), bytes.NewReader(b), Info{}, nil)
		if err == nil || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("%s cut short: %v", name, err)
		}
	}
	if _, err := (Image{}).Process(context.Background(), strings.NewReader("text"), Info{}, nil); err == nil || !strings.Contains(err.Error(), "not an image") {
		t.Errorf("text: %v", err)
	}
}

// The html step says a body is not HTML by its Content-Type, or, when
// that is absent or generic, by sniffing its first bytes; such a body
// has no title and no links. A page without <title> has title "".
func TestHTMLSaysWhenABodyIsNotHTML(t *testing.T) {
	var pngBody bytes.Buffer
	if err := png.Encode(&pngBody, image.NewRGBA(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	page := `<html><head></head><body><a href="/x">x</a></body></html>`
	for _, tc := range []struct {
		name, contentType, body, notHTML, title string
	}{
		{"png by its type", "image/png", pngBody.String(), "image/png", ""},
		{"png by sniffing, no type", "", pngBody.String(), "image/png", ""},
		{"png by sniffing, generic type", "application/octet-stream", pngBody.String(), "image/png", ""},
		{"pdf by its type, whatever it holds", "Application/PDF; q=1", page, "application/pdf", ""},
		{"json", "application/json", `{"a":1}`, "application/json", ""},
		{"html, no title", "text/html; charset=utf-8", page, "", ""},
		{"xhtml", "application/xhtml+xml", `<html><title>X</title></html>`, "", "X"},
		{"untyped text that may be html", "", `hello <a href="/x">x</a><title>T</title>`, "", "T"},
		{"untyped xhtml", "", `<?xml version="1.0"?><html><title>T</title></html>`, "", "T"},
		{"empty, typed image", "image/png", "", "image/png", ""},
		{"empty, untyped", "", "", "", ""},
	} {
		v, err := HTML{}.Process(context.Background(), strings.NewReader(tc.body), Info{URL: "http://127.0.0.1/p", ContentType: tc.contentType}, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := v.(HTMLResult)
		if got.NotHTML != tc.notHTML || got.Title != tc.title || got.Links == nil {
			t.Errorf("%s: got %+v, want not_html %q, title %q, links a list", tc.name, got, tc.notHTML, tc.title)
		}
		if tc.notHTML != "" && len(got.Links) != 0 {
			t.Errorf("%s: links %v of a body that is not HTML", tc.name, got.Links)
		}
	}
}
