package activities

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/temoto/robotstxt"
)

// robotsRecord is an origin's robots.txt as the fetch workers of one blob
// store share it (RobotsKey): what was fetched, and until when it holds.
type robotsRecord struct {
	Origin  string    `json:"origin"`
	Kind    string    `json:"kind"`
	Reason  string    `json:"reason,omitempty"`
	Body    []byte    `json:"body,omitempty"`
	Expires time.Time `json:"expires"`
	Retry   string    `json:"retry,omitempty"`
}

// RobotsKey is where the fetch workers of a blob store keep what origin's
// robots.txt says, for each other.
func RobotsKey(origin string) string {
	sum := sha256.Sum256([]byte(origin))
	return "robots/" + hex.EncodeToString(sum[:16]) + ".json"
}

// loadRobots is origin's entry: the one another fetch worker of the blob
// store recorded, if it still holds, else fetched (and recorded for the
// others). Bounded by timeout in all.
func (f *Fetcher) loadRobots(origin, ua string, own bool, timeout time.Duration) *robotsEntry {
	c := f.robots()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if e := f.sharedRobots(ctx, origin); e != nil {
		return e
	}
	e := f.fetchRobots(ctx, origin, ua, own, timeout)
	e.retry = c.ttl(e.kind)
	e.expires = c.now().Add(e.retry)
	if f.Store != nil {
		rec := robotsRecord{Origin: origin, Kind: e.kind, Reason: e.reason, Body: e.body, Expires: e.expires, Retry: e.retry.String()}
		// A store that cannot take it only costs the other workers a fetch.
		_ = putJSON(context.WithoutCancel(ctx), f, RobotsKey(origin), rec)
	}
	e.body = nil
	return e
}

// sharedRobots is the entry another fetch worker recorded for origin, if
// it still holds.
func (f *Fetcher) sharedRobots(ctx context.Context, origin string) *robotsEntry {
	if f.Store == nil {
		return nil
	}
	rc, err := f.Store.Open(ctx, RobotsKey(origin))
	if err != nil {
		return nil
	}
	defer rc.Close()
	var rec robotsRecord
	if json.NewDecoder(io.LimitReader(rc, 4*MaxRobotsBytes)).Decode(&rec) != nil || rec.Origin != origin {
		return nil
	}
	// A record is believed no longer than this worker would trust what
	// it fetched itself: a hand-written one of a century does not keep
	// the host's robots.txt away for good.
	c := f.robots()
	if now := c.now(); !now.Before(rec.Expires) || rec.Expires.After(now.Add(c.ttl(rec.Kind))) {
		return nil
	}
	e := &robotsEntry{url: origin + "/robots.txt", kind: rec.Kind, reason: rec.Reason, expires: rec.Expires}
	e.retry, _ = time.ParseDuration(rec.Retry)
	switch rec.Kind {
	case robotsParsed:
		e.data = parseRobots(truncateRobots(rec.Body))
	case robotsUnavailable, robotsUnreachable:
	default:
		return nil
	}
	return e
}

func putJSON(ctx context.Context, f *Fetcher, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w, err := f.Store.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Commit()
}

// fetchRobots asks origin for its robots.txt through the worker's client
// (its guard and proxy), with no header of the batch but its User-Agent
// (own): robots.txt is public, and the batch's credentials are for its
// URLs. RFC 9309: a 2xx is parsed (its first MaxRobotsBytes), up to five
// redirects are followed, a 4xx or more redirects allow everything, and
// a 5xx (429 too), a network error or no answer in time disallow
// everything for a while.
func (f *Fetcher) fetchRobots(ctx context.Context, origin, ua string, own bool, timeout time.Duration) *robotsEntry {
	e := &robotsEntry{url: origin + "/robots.txt"}
	unreachable := func(why string) *robotsEntry {
		e.kind, e.reason = robotsUnreachable, why
		return e
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url, nil)
	if err != nil {
		return unreachable(err.Error())
	}
	if own {
		req.Header.Set("User-Agent", ua)
	}
	client := *f.Client
	client.CheckRedirect = func(_ *http.Request, via []*http.Request) error {
		if len(via) > robotsRedirects {
			return errTooManyRedirects
		}
		return nil
	}
	resp, err := client.Do(req)
	var blocked *BlockedError
	switch {
	case errors.Is(err, errTooManyRedirects):
		e.kind, e.reason = robotsUnavailable, fmt.Sprintf("more than %d redirects", robotsRedirects)
		return e
	case errors.As(err, &blocked):
		// The URL's own request meets the guard, and says so.
		e.kind, e.reason = robotsUnavailable, "refused by the guard"
		return e
	case err != nil && ctx.Err() != nil:
		return unreachable("no answer within " + timeout.String())
	case err != nil:
		return unreachable(unwrapURL(err))
	}
	defer resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests || code >= 500:
		drain(resp.Body)
		return unreachable("HTTP " + strconv.Itoa(code))
	case code < 200 || code >= 300:
		drain(resp.Body)
		e.kind, e.reason = robotsUnavailable, "HTTP "+strconv.Itoa(code)
		return e
	}
	var rd io.Reader = resp.Body
	if enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc == "gzip" || enc == "x-gzip" {
		// Sent gzipped though not asked so (the client asks for no
		// compression): read unzipped, as far as the limit only.
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return unreachable("unzipping it: " + err.Error())
		}
		rd = zr
	}
	body, err := io.ReadAll(io.LimitReader(rd, MaxRobotsBytes+1))
	switch {
	case err != nil && ctx.Err() != nil:
		return unreachable("no whole answer within " + timeout.String())
	case err != nil:
		return unreachable("reading it: " + err.Error())
	}
	e.kind, e.body = robotsParsed, truncateRobots(body)
	e.data = parseRobots(e.body)
	return e
}

// truncateRobots keeps the first MaxRobotsBytes of a robots.txt, cut
// after its last whole line there.
func truncateRobots(b []byte) []byte {
	if len(b) <= MaxRobotsBytes {
		return b
	}
	b = b[:MaxRobotsBytes]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[:i+1]
	}
	return b[:0]
}

// parseRobots reads a robots.txt as RFC 9309 asks, using every rule it
// can parse: the parser gives up on a whole file for one bad line (a
// rule before any User-agent, a Crawl-delay that is no number), so such
// lines are dropped and it reads the rest. A file with nothing it can
// use allows everything.
func parseRobots(body []byte) *robotstxt.RobotsData {
	body = normalizeRules(body)
	if d, err := robotstxt.FromBytes(body); err == nil {
		return d
	}
	if d, err := robotstxt.FromBytes(parseableLines(body)); err == nil {
		return d
	}
	d, _ := robotstxt.FromBytes(nil)
	return d
}

// parseableLines keeps the lines of a robots.txt the parser takes.
func parseableLines(body []byte) []byte {
	var out bytes.Buffer
	inGroup := false
	for _, line := range bytes.Split(body, []byte("\n")) {
		text := string(line)
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		field, value, ok := strings.Cut(text, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(field)) {
		case "user-agent", "useragent":
			inGroup = true
		case "allow", "disallow":
			if !inGroup {
				continue
			}
		case "crawl-delay", "crawldelay":
			if d, err := strconv.ParseFloat(value, 64); !inGroup || err != nil || math.IsNaN(d) || d < 0 || d > 86400 {
				continue
			}
		case "sitemap", "host":
		default:
			continue
		}
		out.WriteString(text)
		out.WriteByte('\n')
	}
	return out.Bytes()
}
