package main

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"
)

// TestCapturesAPageThatNeverGoesIdle shoots a page like the Web UI of a
// running workflow: it draws after its load event and keeps a request
// open forever. Chromium's own --screenshot either shoots it blank (at
// load) or never (with --virtual-time-budget); this must shoot it drawn,
// within its timeout.
func TestCapturesAPageThatNeverGoesIdle(t *testing.T) {
	bin, err := findBrowser()
	if err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath(bin); err != nil {
		t.Skip(err)
	}
	hold := make(chan struct{})
	defer close(hold)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/poll" {
			select { // a long poll that never answers
			case <-hold:
			case <-r.Context().Done():
			}
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><body style="margin:0;background:#fff">
<script>
fetch("/poll");
setTimeout(() => { document.body.style.background = "rgb(0, 128, 255)"; }, 1500);
</script></body>`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shot, err := capture(ctx, bin, srv.URL, 320, 200, 4*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 200 {
		t.Errorf("size %v, want 320x200", b)
	}
	r, g, b, _ := img.At(160, 100).RGBA()
	if r>>8 != 0 || g>>8 != 128 || b>>8 != 255 {
		t.Errorf("pixel (%d,%d,%d), want the colour drawn after load (0,128,255)", r>>8, g>>8, b>>8)
	}
}
