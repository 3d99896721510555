package batchfetch_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/process"
	"github.com/batchfetch/batchfetch/workflows"
)

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// keptBytes reads a kept body as a user would: the file <blob dir>/<body_key>.
func keptBytes(t *testing.T, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(env.blobDir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatalf("kept body %s: %v", key, err)
	}
	return b
}

// TestKeepBodiesStoresEachBodyOnceByContent: with keep_bodies, every ok
// body is a file under bodies/sha256/<hex> holding the bytes the server
// sent; URLs with the same body share one file; the batch's cleanup
// leaves them; ok results carry the response's Content-Type, ETag and
// Last-Modified.
func TestKeepBodiesStoresEachBodyOnceByContent(t *testing.T) {
	same := []byte("the same body, twice\n")
	big := randomBody(3<<20 + 17) // a blob of its own, not in a pack
	lm := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	s := newSite(t, map[string]http.HandlerFunc{
		"/a": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"v1"`)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			http.ServeContent(w, r, "", lm, bytes.NewReader(same))
		},
		"/b": func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(same) },
		"/big": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(big)
		},
		"/empty": func(w http.ResponseWriter, r *http.Request) {},
	})
	urls := []string{s.URL + "/a", s.URL + "/b", s.URL + "/big", s.URL + "/missing", s.URL + "/empty"}
	run := start(t, workflows.Input{URLs: urls, KeepBodies: true})
	out, err := result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{same, same, big, nil, {}}
	for i, r := range out.Results {
		if want[i] == nil {
			if r.Outcome != workflows.OutcomeHTTPError || r.BodyKey != "" {
				t.Errorf("%s: %+v, want a 404 without a kept body", urls[i], r)
			}
			continue
		}
		if r.Outcome != workflows.OutcomeOK || r.BodyKey != activities.KeptBodyKey(hexSum(want[i])) || r.SHA256 != hexSum(want[i]) {
			t.Fatalf("%s: %+v, want ok with body_key %s", urls[i], r, activities.KeptBodyKey(hexSum(want[i])))
		}
		if got := keptBytes(t, r.BodyKey); !bytes.Equal(got, want[i]) {
			t.Errorf("%s: the kept file holds %d bytes, not the %d the server sent", urls[i], len(got), len(want[i]))
		}
	}
	if a, b := out.Results[0], out.Results[1]; a.BodyKey != b.BodyKey {
		t.Errorf("one body, two keys: %s and %s", a.BodyKey, b.BodyKey)
	}
	if r := out.Results[0]; r.ETag != `"v1"` || r.ContentType != "text/plain; charset=utf-8" || r.LastModified != lm.Format(http.TimeFormat) {
		t.Errorf("metadata of /a: %q %q %q", r.ETag, r.ContentType, r.LastModified)
	}
	if r := out.Results[2]; r.ContentType != "application/octet-stream" || r.ETag != "" || r.LastModified != "" {
		t.Errorf("metadata of /big: %q %q %q", r.ETag, r.ContentType, r.LastModified)
	}
	assertNoBlobs(t, run)
	// One file per distinct body, and no leftover of a write.
	entries, err := os.ReadDir(filepath.Join(env.blobDir, "bodies", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s in bodies/sha256", e.Name())
		}
	}
	// Without keep_bodies nothing is kept, and metadata still comes.
	run = start(t, workflows.Input{URLs: urls[:1]})
	out, err = result(t, run)
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Results[0]; r.BodyKey != "" || r.ETag != `"v1"` {
		t.Errorf("without keep_bodies: %+v", r)
	}
}

// htmlPage serves body with the given Content-Type.
func htmlPage(ct string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		_, _ = w.Write([]byte(body))
	}
}

// TestProcessHTML: "process": "html" gives each page's title and its
// links, absolute, deduplicated, in document order, from relative,
// absolute, protocol-relative and broken hrefs, a <base href>, and pages
// in other encodings; a page with no <title> has title ""; a body that is
// not HTML (by its Content-Type, or sniffed when that is generic) is ok,
// with its sha256, and says not_html; through the inline path and the
// staged one.
func TestProcessHTML(t *testing.T) {
	var pngBody bytes.Buffer
	if err := png.Encode(&pngBody, image.NewRGBA(image.Rect(0, 0, 3, 2))); err != nil {
		t.Fatal(err)
	}
	pages := map[string]http.HandlerFunc{
		"/dir/page": htmlPage("text/html; charset=utf-8", `<!doctype html><html><head><title>  Hello
			World </title></head><body>
			<a href="/x">x</a> <a href="y/z?q=1#frag">rel</a> <a href="https://other.example/abs">abs</a>
			<a href="//proto.example/p">proto</a> <a href="http://[::1">broken</a> <a href="mailto:a@b.example">mail</a>
			<a href="#top">top</a> <a href="/x">again</a> <a>no href</a> <map><area href="/map" alt=""></map>
			<a href="  /spaced  ">spaced</a></body></html>`),
		"/base": htmlPage("text/html", `<html><head><base href="https://base.example/root/"><title>Based</title></head>
			<body><a href="rel">r</a><a href="/top">t</a><base href="https://ignored.example/"><a href="again">a</a></body></html>`),
		"/latin1": htmlPage("text/html; charset=iso-8859-1", "<title>Caf\xe9</title><a href=\"/\xe9t\xe9\">summer</a>"),
		"/meta":   htmlPage("text/html", "<html><head><meta charset=\"windows-1252\"><title>\x93quoted\x94</title></head></html>"),
		"/empty":  htmlPage("text/html", ""),
		// No charset anywhere, and ASCII for its first KiB: UTF-8.
		"/late":     htmlPage("text/html", "<!--"+strings.Repeat("x", 1100)+"--><title>Ünïcödé</title>"),
		"/bytes":    htmlPage("application/octet-stream", string(randomBody(5000))),
		"/png":      htmlPage("image/png", pngBody.String()),
		"/sniffed":  htmlPage("application/octet-stream", pngBody.String()),
		"/untitled": htmlPage("text/html", `<html><body><a href="/x">x</a></body></html>`),
	}
	s := newSite(t, pages)
	want := map[string]process.HTMLResult{
		"/dir/page": {Title: "Hello World", Links: []string{s.URL + "/x", s.URL + "/dir/y/z?q=1", "https://other.example/abs", "http://proto.example/p", s.URL + "/map", s.URL + "/spaced"}},
		"/base":     {Title: "Based", Links: []string{"https://base.example/root/rel", "https://base.example/top", "https://base.example/root/again"}},
		"/latin1":   {Title: "Café", Links: []string{s.URL + "/%C3%A9t%C3%A9"}},
		"/meta":     {Title: "“quoted”", Links: []string{}},
		"/empty":    {Title: "", Links: []string{}},
		"/late":     {Title: "Ünïcödé", Links: []string{}},
		"/untitled": {Title: "", Links: []string{s.URL + "/x"}},
		"/bytes":    {Title: "", Links: []string{}, NotHTML: "application/octet-stream"},
		"/png":      {Title: "", Links: []string{}, NotHTML: "image/png"},
		"/sniffed":  {Title: "", Links: []string{}, NotHTML: "image/png"},
	}
	paths := []string{"/dir/page", "/base", "/latin1", "/meta", "/empty", "/late", "/bytes", "/png", "/sniffed", "/untitled"}
	check := func(t *testing.T, results []workflows.Result) {
		t.Helper()
		for i, r := range results {
			p := paths[i%len(paths)]
			var got process.HTMLResult
			if r.Outcome != workflows.OutcomeOK || json.Unmarshal(r.Processed, &got) != nil {
				t.Fatalf("%s: %+v", p, r)
			}
			w := want[p]
			if got.Title != w.Title || strings.Join(got.Links, " ") != strings.Join(w.Links, " ") || got.NotHTML != w.NotHTML {
				t.Errorf("%s: got %+v\nwant %+v", p, got, w)
			}
			if p == "/png" && (r.SHA256 != hexSum(pngBody.Bytes()) || !bytes.Contains(r.Processed, []byte(`"title":""`)) || !bytes.Contains(r.Processed, []byte(`"not_html":"image/png"`))) {
				t.Errorf("%s: sha256 %s, processed %s; want the PNG's sha256 and an empty title with not_html", p, r.SHA256, r.Processed)
			}
			if p == "/untitled" && !bytes.Contains(r.Processed, []byte(`"title":""`)) {
				t.Errorf("%s: processed %s, want \"title\": \"\"", p, r.Processed)
			}
		}
	}
	t.Run("inline", func(t *testing.T) {
		var urls []string
		for _, p := range paths {
			urls = append(urls, s.URL+p)
		}
		out, err := result(t, start(t, workflows.Input{URLs: urls, Process: "html"}))
		if err != nil {
			t.Fatal(err)
		}
		check(t, out.Results)
	})
	t.Run("staged", func(t *testing.T) {
		var urls []string
		for i := 0; i < 1200; i++ {
			urls = append(urls, s.URL+paths[i%len(paths)])
		}
		run := start(t, workflows.Input{URLs: urls, Process: "html", KeepBodies: true})
		out, err := result(t, run)
		if err != nil {
			t.Fatal(err)
		}
		if out.ResultsFile == "" || out.OK != len(urls) {
			t.Fatalf("%+v", out)
		}
		results := readResultsFile(t, out.ResultsFile)
		check(t, results)
		for i, r := range results {
			if r.BodyKey != activities.KeptBodyKey(r.SHA256) || hexSum(keptBytes(t, r.BodyKey)) != r.SHA256 {
				t.Fatalf("result %d: body_key %q for sha256 %s", i, r.BodyKey, r.SHA256)
			}
		}
		assertNoBlobs(t, run)
	})
}

func readResultsFile(t *testing.T, key string) []workflows.Result {
	t.Helper()
	r, err := env.store.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []workflows.Result
	dec := json.NewDecoder(r)
	for dec.More() {
		var res workflows.Result
		if err := dec.Decode(&res); err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

// webpHeader is a lossless WebP file's header (RIFF, VP8L) of w x h: all
// image.DecodeConfig reads.
func webpHeader(w, h int) []byte {
	bits := uint32(w-1) | uint32(h-1)<<14
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(4+8+5+1))
	b.WriteString("WEBPVP8L")
	_ = binary.Write(&b, binary.LittleEndian, uint32(5+1))
	b.WriteByte(0x2f)
	_ = binary.Write(&b, binary.LittleEndian, bits) // alpha 0, version 0
	b.WriteByte(0)
	b.WriteByte(0) // padding to even
	return b.Bytes()
}

// TestProcessImage: "process": "image" reads the format and size of PNG,
// JPEG, GIF and WebP images from their headers; a truncated image and a
// body that is no image end as errors that say so.
func TestProcessImage(t *testing.T) {
	encode := func(f func(*bytes.Buffer, image.Image) error, w, h int) []byte {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		img.Set(0, 0, color.RGBA{255, 0, 0, 255})
		var b bytes.Buffer
		if err := f(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pngBytes := encode(func(b *bytes.Buffer, i image.Image) error { return png.Encode(b, i) }, 7, 5)
	bodies := map[string][]byte{
		"/a.png":  pngBytes,
		"/a.jpg":  encode(func(b *bytes.Buffer, i image.Image) error { return jpeg.Encode(b, i, nil) }, 9, 4),
		"/a.gif":  encode(func(b *bytes.Buffer, i image.Image) error { return gif.Encode(b, i, nil) }, 3, 2),
		"/a.webp": webpHeader(123, 45),
		"/cut":    pngBytes[:20],
		"/text":   []byte("hello, I am not an image\n"),
	}
	routes := map[string]http.HandlerFunc{}
	for p, b := range bodies {
		routes[p] = func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(b) }
	}
	s := newSite(t, routes)
	paths := []string{"/a.png", "/a.jpg", "/a.gif", "/a.webp", "/cut", "/text"}
	var urls []string
	for _, p := range paths {
		urls = append(urls, s.URL+p)
	}
	out, err := result(t, start(t, workflows.Input{URLs: urls, Process: "image", KeepBodies: true}))
	if err != nil {
		t.Fatal(err)
	}
	want := []process.ImageResult{{Format: "png", Width: 7, Height: 5}, {Format: "jpeg", Width: 9, Height: 4},
		{Format: "gif", Width: 3, Height: 2}, {Format: "webp", Width: 123, Height: 45}}
	for i, w := range want {
		var got process.ImageResult
		r := out.Results[i]
		if r.Outcome != workflows.OutcomeOK || json.Unmarshal(r.Processed, &got) != nil || got != w {
			t.Errorf("%s: %+v (processed %s), want %+v", paths[i], r, r.Processed, w)
		}
	}
	for i, msg := range map[int]string{4: "process image: image header cut short", 5: "process image: not an image"} {
		r := out.Results[i]
		if r.Outcome != workflows.OutcomeError || !strings.Contains(r.Error, msg) || r.BodyKey != "" || r.Processed != nil {
			t.Errorf("%s: %+v, want an error saying %q and nothing kept", paths[i], r, msg)
		}
	}
	if out.OK != 4 || out.Failed != 2 {
		t.Errorf("ok %d failed %d", out.OK, out.Failed)
	}
}

// TestUnknownProcessIsInvalidInput: a step no CPU worker has, or a name
// that cannot be one, fails the batch with InvalidInput naming the field,
// before anything is fetched.
func TestUnknownProcessIsInvalidInput(t *testing.T) {
	s := newSite(t, map[string]http.HandlerFunc{"/p": htmlPage("text/html", "<title>t</title>")})
	for name, want := range map[string]string{
		"nosuch":   `process: this CPU worker has no processor named "nosuch"`,
		"htm":      `process: this CPU worker has no processor named "htm" (it has sha256, html, image): did you mean "html"?`,
		"Bad Name": `process: "Bad Name" is not a processor name`,
	} {
		_, err := result(t, start(t, workflows.Input{URLs: []string{s.URL + "/p"}, Process: name}))
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != workflows.InvalidInputType || !strings.Contains(appErr.Message(), want) {
			t.Errorf("process %q: got %v, want InvalidInput saying %q", name, err, want)
		}
	}
	if n := s.totalHits(); n != 0 {
		t.Errorf("%d requests made for batches with a bad process", n)
	}
}

// TestNotModifiedKeepsTheEarlierProcessed: with "process": "html" and
// the earlier results, a page that answers 304 keeps the title and links
// its earlier result had (no body came for the step to read), and a
// page that changed has its new title; through the inline path
// (previous) and the staged one (previous_file).
func TestNotModifiedKeepsTheEarlierProcessed(t *testing.T) {
	var mu sync.Mutex
	version := map[string]int{}
	s := newSite(t, map[string]http.HandlerFunc{
		"/keep": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"k1"`)
			if r.Header.Get("If-None-Match") == `"k1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			htmlPage("text/html", `<title>Kept page</title><a href="/a">a</a>`)(w, r)
		},
		"/change": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			version["/change"]++
			n := version["/change"]
			mu.Unlock()
			htmlPage("text/html", fmt.Sprintf("<title>Version %d</title>", n))(w, r)
		},
	})
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%v", staged), func(t *testing.T) {
			urls := []string{s.URL + "/keep", s.URL + "/change"}
			out1, err := result(t, start(t, workflows.Input{URLs: urls, Process: "html"}))
			if err != nil || out1.OK != 2 {
				t.Fatalf("first run: %v %+v", err, out1)
			}
			in := workflows.Input{URLs: urls, Process: "html"}
			if staged {
				var b bytes.Buffer
				for _, r := range out1.Results {
					_ = json.NewEncoder(&b).Encode(r)
				}
				key := fmt.Sprintf("inputs/previous-html-%d.jsonl", time.Now().UnixNano())
				w, _ := env.store.Create(context.Background(), key)
				_, _ = w.Write(b.Bytes())
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				in.PreviousFile = key
			} else {
				in.Previous = out1.Results
			}
			out2, err := result(t, start(t, in))
			if err != nil {
				t.Fatal(err)
			}
			second := out2.Results
			if staged {
				second = readResultsFile(t, out2.ResultsFile)
			}
			titles := map[string]string{}
			for _, r := range second {
				var got process.HTMLResult
				if err := json.Unmarshal(r.Processed, &got); err != nil {
					t.Fatalf("%s: %s: processed %q: %v", r.URL, r.Outcome, r.Processed, err)
				}
				titles[r.URL[len(s.URL):]] = fmt.Sprintf("%s %s %d links changed=%v", r.Outcome, got.Title, len(got.Links), r.Changed != nil && *r.Changed)
			}
			if got := titles["/keep"]; got != "not_modified Kept page 1 links changed=false" {
				t.Errorf("/keep: %s, want not_modified with the earlier title and link", got)
			}
			if got := titles["/change"]; !strings.HasPrefix(got, "ok Version ") || !strings.HasSuffix(got, " changed=true") || strings.HasPrefix(got, "ok Version 1 ") {
				t.Errorf("/change: %s, want ok with its new title, changed", got)
			}
		})
	}
}
