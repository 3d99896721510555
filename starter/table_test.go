package main

import (
	"bytes"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The table shows what a process step found: an html page's title and
// links (or that a body is not HTML), an image's format and size.
func TestTableShowsTheStepOutput(t *testing.T) {
	var pic bytes.Buffer
	if err := png.Encode(&pic, image.NewRGBA(image.Rect(0, 0, 3, 2))); err != nil {
		t.Fatal(err)
	}
	pages := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<html><head><title>Spring catalogue</title></head><body><a href="/a">a</a> <a href="/b">b</a></body></html>`)
		case "/untitled":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<html><body><a href="/a">a</a></body></html>`)
		case "/pic.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(pic.Bytes())
		}
	}))
	defer pages.Close()
	r := starter(t, "", nil, "--process", "html", pages.URL+"/page", pages.URL+"/untitled", pages.URL+"/pic.png")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"URL", "OUTPUT", `"Spring catalogue", 2 links`, "(no title), 1 link", "not HTML: image/png"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the html table lacks %q:\n%s", want, r.stdout)
		}
	}
	r = starter(t, "", nil, "--process", "image", pages.URL+"/pic.png")
	if r.code != 0 || !strings.Contains(r.stdout, "OUTPUT") || !strings.Contains(r.stdout, "png 3x2") {
		t.Errorf("the image table lacks its size: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = starter(t, "", nil, pages.URL+"/page")
	if r.code != 0 || strings.Contains(r.stdout, "OUTPUT") {
		t.Errorf("a batch without a step has an OUTPUT column: exit %d\n%s", r.code, r.stdout)
	}
}
