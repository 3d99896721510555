package process

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"
	"golang.org/x/text/transform"
)

// MaxLinks is the most links the html step returns (the first ones, in
// document order); MaxTitle the longest title, in bytes.
const (
	MaxLinks = 1000
	MaxTitle = 1024
)

// MaxHref is the longest href the html step reads: a longer one is left
// out (browsers and servers rarely take URLs over 2 KiB).
const MaxHref = 2048

// maxHrefs bounds the distinct hrefs a page's links are taken from.
const maxHrefs = 4 * MaxLinks

// maxToken bounds the memory of one token (a tag or a run of text): a
// larger one ends the parse with what was found before it.
const maxToken = 1 << 20

// HTMLResult is what the html step finds.
type HTMLResult struct {
	// Title is the text of the page's first <title> (not one inside
	// <svg> or <math>), its white space collapsed, at most MaxTitle
	// bytes: "" for a page with no <title> or an empty one, and for a
	// body that is not HTML (NotHTML).
	Title string `json:"title"`
	// Links are the page's links (see HTML): [] for none.
	Links []string `json:"links"`
	// Truncated says the page had more than MaxLinks distinct links, or a
	// token over 1 MiB stopped the parse.
	Truncated bool `json:"truncated,omitempty"`
	// NotHTML, when set, says the body is not HTML, and is its media type
	// (image/png): as its Content-Type says, or, when that is absent or
	// generic (application/octet-stream), as http.DetectContentType finds
	// from its first bytes. Such a body is not parsed: no title, no links.
	// The URL's result stays ok, with its sha256.
	NotHTML string `json:"not_html,omitempty"`
}

// HTML is the "html" step: the page's title and its links (<a href>,
// <area href>), resolved against the page's URL and its <base href>,
// absolute, deduplicated, in document order. Only http and https links
// are kept. The body is decoded from its charset (a byte-order mark, the
// Content-Type's charset, or a <meta> in its first KiB; UTF-8 otherwise).
// A body that is not HTML (notHTML) is said to be so (NotHTML), not read.
type HTML struct{}

// Process implements Processor.
func (HTML) Process(ctx context.Context, body io.Reader, info Info, _ Env) (any, error) {
	base, err := url.Parse(info.URL)
	if err != nil {
		return nil, fmt.Errorf("page URL: %w", err)
	}
	out := HTMLResult{Links: []string{}}
	br := bufio.NewReaderSize(body, 4096)
	head, err := br.Peek(1024)
	if len(head) == 0 {
		if err == io.EOF {
			out.NotHTML = notHTML(info.ContentType, nil)
			return out, nil // an empty page (or other body)
		}
		return nil, fmt.Errorf("reading the page: %w", err)
	}
	if out.NotHTML = notHTML(info.ContentType, head); out.NotHTML != "" {
		return out, nil
	}
	var r io.Reader = br
	// A byte-order mark, the Content-Type's charset or a <meta> in the
	// first KiB says; said nothing, a page is UTF-8 (as most are), not
	// windows-1252 (as the sniffing algorithm guesses).
	enc, name, certain := charset.DetermineEncoding(head, info.ContentType)
	guessed := !certain && name == "windows-1252" && !bytes.Contains(bytes.ToLower(head), []byte("charset"))
	if name != "utf-8" && !guessed {
		r = transform.NewReader(br, enc.NewDecoder())
	}
	z := html.NewTokenizer(r)
	z.SetMaxBuf(maxToken)
	// The hrefs, as written, distinct and in order: the first <base href>
	// applies to every link of the page, also those before it, so they are
	// resolved at the end.
	var hrefs []string
	rawSeen := map[string]bool{}
	dropped := false // hrefs past the bound were not kept
	inTitle, haveTitle, haveBase := false, false, false
	foreign := 0 // depth inside <svg> and <math>, whose <title> is not the page's
	var title strings.Builder
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tt := z.Next()
		if tt == html.ErrorToken {
			if err := z.Err(); err != io.EOF {
				if !errors.Is(err, html.ErrBufferExceeded) {
					return nil, fmt.Errorf("reading the page: %w", err)
				}
				out.Truncated = true
			}
			break
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if (tag == "svg" || tag == "math") && tt == html.StartTagToken {
				foreign++
			}
			if tag == "title" && !haveTitle && foreign == 0 && tt == html.StartTagToken {
				inTitle = true
			}
			if !hasAttr || (tag != "a" && tag != "area" && tag != "base") {
				continue
			}
			href, ok := attr(z, "href")
			if !ok || len(href) > MaxHref {
				continue
			}
			if tag == "base" {
				if !haveBase { // the first <base href> counts
					haveBase = true
					if u, err := base.Parse(clean(href)); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
						base = u
					}
				}
				continue
			}
			if rawSeen[href] {
				continue
			}
			if len(hrefs) == maxHrefs {
				dropped = true
				continue
			}
			rawSeen[href] = true
			hrefs = append(hrefs, href)
		case html.TextToken:
			if inTitle && title.Len() < MaxTitle {
				title.Write(z.Text())
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "title":
				if inTitle {
					inTitle, haveTitle = false, true
				}
			case "svg", "math":
				foreign = max(0, foreign-1)
			}
		}
	}
	seen := map[string]bool{}
	for _, href := range hrefs {
		link, ok := resolve(base, href)
		if !ok || seen[link] {
			continue
		}
		if len(out.Links) == MaxLinks {
			out.Truncated = true
			break
		}
		seen[link] = true
		out.Links = append(out.Links, link)
	}
	if dropped && len(out.Links) == MaxLinks {
		out.Truncated = true
	}
	out.Title = clip(strings.Join(strings.Fields(title.String()), " "), MaxTitle)
	return out, nil
}

// attr returns the value of the current tag's attribute key.
func attr(z *html.Tokenizer, key string) (string, bool) {
	for {
		k, v, more := z.TagAttr()
		if string(k) == key {
			return string(v), true
		}
		if !more {
			return "", false
		}
	}
}

// resolve makes href absolute against base; only http and https links
// with a host count. The fragment is dropped: it names a place in a page,
// not another page.
func resolve(base *url.URL, href string) (string, bool) {
	href = clean(href)
	if href == "" || strings.HasPrefix(href, "#") {
		return "", false
	}
	u, err := base.Parse(href)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), true
}

// clean is an href as a browser reads it: without surrounding spaces,
// tabs and newlines inside, and backslashes as slashes (in an http or
// https URL, which are the only ones kept).
func clean(href string) string {
	href = strings.TrimSpace(href)
	href = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, href)
	return href
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
