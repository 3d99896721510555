package activities

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/batchfetch/batchfetch/process"
)

// Prev is what an earlier batch said about a URL: the validators for a
// conditional request, and its body, for change detection.
type Prev struct {
	ContentType  string `json:"content_type,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	SHA256       string `json:"sha256,omitempty"`
	Size         int64  `json:"size,omitempty"`
	BodyKey      string `json:"body_key,omitempty"`
	// Date is the Date of the response LastModified came from: whether
	// it is a strong validator (strongDate).
	Date string `json:"date,omitempty"`
	// Outcome and Status, for an earlier result that failed: how it
	// failed (Failed), so that a failure again the same way is not a
	// change. Such a Prev has nothing else: no body, no validators.
	Outcome string `json:"outcome,omitempty"`
	Status  int    `json:"status,omitempty"`
}

// PrevOf is the Prev of an earlier result: nil when it says nothing of
// use (a success with no sha256, a canceled URL). A failure's is its
// outcome and status alone.
func PrevOf(r Result) *Prev {
	switch {
	case r.Outcome == OutcomeCanceled:
		return nil // canceled: nothing is known of the page
	case !Succeeded(r.Outcome) && r.Outcome != "":
		// A failure's validators cannot stand for a body. Its outcome
		// travels with the URL: only one that can be an outcome's name.
		if !outcomeName(r.Outcome) {
			return nil
		}
		return &Prev{Outcome: r.Outcome, Status: r.Status}
	case r.SHA256 == "":
		return nil // a hand-written entry without its sha256 stands for no body
	}
	return &Prev{ETag: r.ETag, LastModified: r.LastModified, Date: r.Date, ContentType: r.ContentType, SHA256: r.SHA256, Size: r.Size, BodyKey: r.BodyKey}
}

// outcomeName tells whether s can name an outcome: at most 32 lower-case
// letters and '_' (those of a later version too).
func outcomeName(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// Failed tells whether p is what an earlier failure said of its URL: its
// outcome and HTTP status, no body.
func (p *Prev) Failed() bool { return p != nil && p.Outcome != "" }

// Replaces tells whether p, a later earlier result of a URL, takes the
// place of old: one with a body always does; a failure does not take the
// place of a body (a URL listed twice takes the later entry that has a
// sha256).
func (p *Prev) Replaces(old *Prev) bool {
	return old == nil || !p.Failed() || old.Failed()
}

// ChangedSince says whether r, a result of a batch given earlier results,
// differs from what they said of its URL (prev; nil: they did not have
// it, and r is changed). A success changed when its body's sha256
// differs from the earlier body's (a not_modified result never did); a
// failure changed unless the earlier result failed the same way: the
// same outcome and HTTP status (its error text may differ). A canceled
// result says nothing of the page: nil.
func ChangedSince(prev *Prev, r Result) *bool {
	var changed bool
	switch {
	case r.Outcome == OutcomeCanceled || r.Outcome == "":
		return nil
	case r.Outcome == OutcomeNotModified:
		changed = false
	case prev == nil:
		changed = true
	case Succeeded(r.Outcome):
		changed = prev.Failed() || prev.SHA256 != r.SHA256
	default:
		changed = !prev.Failed() || prev.Outcome != r.Outcome || prev.Status != r.Status
	}
	return &changed
}

// Earlier is what the earlier results said of a URL, for comparing a
// result with them: its Prev, and the CPU step's output of its body,
// which a not_modified result carries forward.
type Earlier struct {
	Prev         *Prev
	Processed    json.RawMessage
	ProcessedKey string
}

// EarlierOf is what an earlier result says of its URL, or nil when it
// says nothing (PrevOf). Only a success's processed output is kept, and
// only one a result could carry: a JSON object of at most
// process.MaxInline bytes, or a key under processed/.
func EarlierOf(r Result) *Earlier {
	p := PrevOf(r)
	if p == nil {
		return nil
	}
	e := &Earlier{Prev: p}
	if p.Failed() {
		return e
	}
	if b := bytes.TrimSpace(r.Processed); len(b) > 0 && len(b) <= process.MaxInline && b[0] == '{' && json.Valid(b) {
		e.Processed = append(json.RawMessage(nil), b...)
	}
	if k := r.ProcessedKey; strings.HasPrefix(k, "processed/") && len(k) <= MaxURLLength && !strings.Contains(k, "..") {
		e.ProcessedKey = k
	}
	return e
}

// CompareWith completes r, a result of a batch given earlier results,
// with what they said of its URL (e; nil: nothing): its changed, when r
// does not say yet, and, when carry (the batch runs a CPU step), for a
// not_modified result without one, the earlier body's processed output:
// a 304 sends no body for the step to read, and the earlier one stands.
func CompareWith(r *Result, e *Earlier, carry bool) {
	var prev *Prev
	if e != nil {
		prev = e.Prev
	}
	if r.Changed == nil {
		r.Changed = ChangedSince(prev, *r)
	}
	if carry && e != nil && r.Outcome == OutcomeNotModified && r.Processed == nil && r.ProcessedKey == "" {
		r.Processed, r.ProcessedKey = e.Processed, e.ProcessedKey
	}
}
