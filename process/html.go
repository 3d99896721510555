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

// maxToken bounds the memory of one token (a tag or a run of text): a
// larger one ends the parse with what was found before it.
const maxToken = 1 << 20

// HTMLResult is what the html step finds.
type HTMLResult struct {
	Title string   `json:"title"`
	Links []string `json:"links"`
	// Truncated says the page had more than MaxLinks distinct links, or a
	// token over 1 MiB stopped the parse.
	Truncated bool `json:"truncated,omitempty"`
}

// HTML is the "html" step: the page's title and its links (<a href>,
// <area href>), resolved against the page's URL and its <base href>,
// absolute, deduplicated, in document order. Only http and https links
// are kept. The body is decoded from its charset (a byte-order mark, the
// Content-Type's charset, or a <meta> in its first KiB; UTF-8 otherwise).
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
			return out, nil // an empty page
		}
		return nil, fmt.Errorf("reading the page: %w", err)
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
	seen := map[string]bool{}
	raw := map[string]bool{} // hrefs as written, since the last <base>
	inTitle, haveTitle, haveBase := false, false, false
	var title strings.Builder
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if err := z.Err(); err != io.EOF {
				if errors.Is(err, html.ErrBufferExceeded) {
					out.Truncated = true
					break
				}
				return nil, fmt.Errorf("reading the page: %w", err)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			if tag == "title" && !haveTitle && tt == html.StartTagToken {
				inTitle = true
			}
			if !hasAttr || (tag != "a" && tag != "area" && tag != "base") || (out.Truncated && tag != "base") {
				continue // past the cap, no link can change the answer
			}
			href, ok := attr(z, "href")
			if !ok {
				continue
			}
			if tag == "base" {
				if !haveBase { // the first <base href> counts
					haveBase = true
					if u, err := base.Parse(strings.TrimSpace(href)); err == nil {
						base = u
						clear(raw)
					}
				}
				continue
			}
			if raw[href] {
				continue // this href again: already kept, or not a link
			}
			if len(raw) >= 4*MaxLinks {
				clear(raw) // a bounded memory of hrefs seen
			}
			raw[href] = true
			link, ok := resolve(base, href)
			if !ok || seen[link] {
				continue
			}
			if len(out.Links) == MaxLinks {
				out.Truncated = true
				continue
			}
			seen[link] = true
			out.Links = append(out.Links, link)
		case html.TextToken:
			if inTitle && title.Len() < MaxTitle {
				title.Write(z.Text())
			}
		case html.EndTagToken:
			if name, _ := z.TagName(); string(name) == "title" && inTitle {
				inTitle, haveTitle = false, true
			}
		}
		if tt == html.ErrorToken {
			break
		}
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
	href = strings.TrimSpace(href)
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
