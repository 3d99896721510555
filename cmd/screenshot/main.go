// Command screenshot saves a PNG of a web page as headless Chromium shows
// it a fixed time after it starts loading, and gives up after a timeout:
//
//	go run ./cmd/screenshot --wait 8s http://127.0.0.1:8233/namespaces/default/workflows/ID/RUN/timeline docs/webui-timeline.png
//
// Chromium's own --screenshot waits for the page to go idle (with
// --virtual-time-budget) or shoots at its load event. A Web UI page of a
// running workflow never goes idle (it long-polls the history), and at its
// load event it has not drawn anything yet. This drives Chromium over its
// DevTools pipe instead: open the page, wait, capture, close.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

func main() {
	wait := flag.Duration("wait", 8*time.Second, "how long the page renders before the capture")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	size := flag.String("size", "1440x1100", "viewport WIDTHxHEIGHT")
	browser := flag.String("chromium", "", "the browser binary (default: chromium, chromium-browser or google-chrome on PATH)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: screenshot [flags] URL OUT.png\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	w, h, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(2)
	}
	bin := *browser
	if bin == "" {
		if bin, err = findBrowser(); err != nil {
			fmt.Fprintln(os.Stderr, "screenshot:", err)
			os.Exit(2)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	png, err := capture(ctx, bin, flag.Arg(0), w, h, *wait)
	if err == nil {
		err = os.WriteFile(flag.Arg(1), png, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "screenshot:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d bytes)\n", flag.Arg(1), len(png))
}

func parseSize(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, "x")
	if ok {
		w, err = strconv.Atoi(ws)
	}
	if ok && err == nil {
		h, err = strconv.Atoi(hs)
	}
	if !ok || err != nil || w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("--size %q: want WIDTHxHEIGHT, such as 1440x1100", s)
	}
	return w, h, nil
}

func findBrowser() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium, or set --chromium)")
}
