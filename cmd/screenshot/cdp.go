package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// session speaks the DevTools protocol over Chromium's pipe: it writes
// NUL-terminated JSON commands to the browser's fd 3 and reads replies and
// events from its fd 4.
type session struct {
	out     *os.File
	mu      sync.Mutex
	next    int
	waiting map[int]chan reply
	closed  chan struct{}
}

type reply struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// capture opens url in a headless browser of w x h, waits, and returns the
// page as a PNG.
func capture(ctx context.Context, bin, url string, w, h int, wait time.Duration) ([]byte, error) {
	profile, err := os.MkdirTemp("", "screenshot-profile-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	toBrowser, commands, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	events, fromBrowser, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--hide-scrollbars", "--user-data-dir="+profile, fmt.Sprintf("--window-size=%d,%d", w, h), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser} // fd 3 and fd 4
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	toBrowser.Close()
	fromBrowser.Close()
	s := &session{out: commands, waiting: map[int]chan reply{}, closed: make(chan struct{})}
	go s.read(events)
	defer func() {
		_, _ = s.call(context.Background(), "Browser.close", "", nil)
		commands.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()

	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := s.into(ctx, "Target.createTarget", "", map[string]any{"url": "about:blank"}, &target); err != nil {
		return nil, err
	}
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err := s.into(ctx, "Target.attachToTarget", "", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	sid := attached.SessionID
	if err := s.into(ctx, "Emulation.setDeviceMetricsOverride", sid, map[string]any{"width": w, "height": h, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		return nil, err
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := s.into(ctx, "Page.navigate", sid, map[string]any{"url": url}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("opening %s: %s", url, nav.ErrorText)
	}
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return nil, fmt.Errorf("timed out before the capture: %w", ctx.Err())
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := s.into(ctx, "Page.captureScreenshot", sid, map[string]any{"format": "png"}, &shot); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(shot.Data)
}

// into calls method and decodes its result into v (if not nil).
func (s *session) into(ctx context.Context, method, sessionID string, params, v any) error {
	res, err := s.call(ctx, method, sessionID, params)
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(res, v)
}

func (s *session) call(ctx context.Context, method, sessionID string, params any) (json.RawMessage, error) {
	s.mu.Lock()
	s.next++
	id := s.next
	ch := make(chan reply, 1)
	s.waiting[id] = ch
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if sessionID != "" {
		msg["sessionId"] = sessionID
	}
	b, _ := json.Marshal(msg)
	_, err := s.out.Write(append(b, 0))
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, fmt.Errorf("%s: %s", method, r.Error.Message)
		}
		return r.Result, nil
	case <-s.closed:
		return nil, fmt.Errorf("%s: the browser went away", method)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// read delivers replies to their callers and drops events.
func (s *session) read(f *os.File) {
	defer close(s.closed)
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			return
		}
		var rep reply
		if json.Unmarshal(msg[:len(msg)-1], &rep) != nil || rep.ID == 0 {
			continue // an event
		}
		s.mu.Lock()
		ch := s.waiting[rep.ID]
		delete(s.waiting, rep.ID)
		s.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
}
