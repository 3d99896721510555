package activities

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/batchfetch/batchfetch/politeness"
)

// Outcomes of one URL.
const (
	OutcomeOK        = "ok"
	OutcomeHTTPError = "http_error"
	OutcomeTimeout   = "timeout"
	OutcomeError     = "error"
	OutcomeCanceled  = "canceled"
	// OutcomeNotModified: the server answered 304 to a conditional
	// request made from an earlier result; a success.
	OutcomeNotModified = "not_modified"
)

// Succeeded tells whether an outcome is a success: ok or not_modified.
func Succeeded(outcome string) bool {
	return outcome == OutcomeOK || outcome == OutcomeNotModified
}

// Result is what happened to one URL: a line of the batch's output.
type Result struct {
	URL       string `json:"url"`
	Outcome   string `json:"outcome"`
	Status    int    `json:"status"`
	SHA256    string `json:"sha256,omitempty"`
	Size      int64  `json:"size"`
	Attempts  int    `json:"attempts"`
	ElapsedMS int64  `json:"elapsed_ms"`
	Error     string `json:"error,omitempty"`
	// For an ok result: the response's Content-Type, ETag,
	// Last-Modified and Date headers, when it sent them. For a
	// not_modified one, the earlier result's, the Date being that of the
	// response the Last-Modified came from: a later batch sends
	// If-Modified-Since only for a Last-Modified a second or more older
	// than its Date.
	ContentType  string `json:"content_type,omitempty"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
	Date         string `json:"date,omitempty"`
	// BodyKey is where the body is kept (keep_bodies), relative to the
	// blob store's root: bodies/sha256/<hex>.
	BodyKey string `json:"body_key,omitempty"`
	// Processed is the CPU step's output (process other than sha256), a
	// JSON object of at most 64 KiB; a larger one is in the blob store
	// under ProcessedKey.
	Processed    json.RawMessage `json:"processed,omitempty"`
	ProcessedKey string          `json:"processed_key,omitempty"`
	// Changed, for a result of a batch given earlier results (canceled
	// ones aside): whether the URL's answer differs from the earlier one
	// (ChangedSince): for a success, its body's sha256; for a failure,
	// unless the earlier result failed with the same outcome and status.
	// A URL the earlier results did not have is changed.
	Changed *bool `json:"changed,omitempty"`
}

// Policy is how each URL of a chunk is fetched: the batch's per-URL
// timeouts and retry policy, applied by the fetch activity itself.
type Policy struct {
	AttemptTimeout time.Duration `json:"attempt_timeout"`
	URLTimeout     time.Duration `json:"url_timeout,omitempty"`
	MaxAttempts    int           `json:"max_attempts"`
	InitialBackoff time.Duration `json:"initial_backoff"`
	// FailFast stops the chunk at its first failed URL.
	FailFast bool `json:"fail_fast,omitempty"`
	// Robots is RobotsObey to check each URL against its host's
	// robots.txt first; anything else (batches started before it
	// existed, RobotsIgnore) fetches every URL as given.
	Robots string `json:"robots,omitempty"`
	// PerHost is the batch's per-host rule (nil: none; the worker's
	// defaults, if any, apply alone). Set only for batches that give one,
	// so other batches' requests are as they were.
	PerHost *politeness.Rule `json:"per_host,omitempty"`
}

// Backoff is the wait after the given (1-based) failed attempt: the
// initial backoff, doubled after each retry.
func (p Policy) Backoff(attempt int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// URLTask is one URL of a batch, with its position in the input.
type URLTask struct {
	Index int    `json:"i"`
	URL   string `json:"u"`
	// Prev is what an earlier batch said of the URL, if anything.
	Prev *Prev `json:"p,omitempty"`
	// R is how the URL's own entry asks for it (nil: as the batch does);
	// it wins over the batch's Request (MergeRequests).
	R *Request `json:"r,omitempty"`
}

// FetchChunkRequest asks for a chunk of a batch's URLs to be fetched.
type FetchChunkRequest struct {
	// Prefix is the batch's place in the blob store.
	Prefix string `json:"prefix"`
	// Chunk numbers the chunk within the batch.
	Chunk int `json:"chunk"`
	// URLs of the chunk; for a staged batch, none: they are read from the
	// chunk's file (URLsKey) and numbered from First.
	URLs  []URLTask `json:"urls,omitempty"`
	First int       `json:"first,omitempty"`
	// Concurrency is how many of the chunk's URLs are fetched at once.
	Concurrency int    `json:"concurrency"`
	Policy      Policy `json:"policy"`
	// PrevParts is how many files of earlier results staging wrote for
	// each chunk of a staged batch (PrevKey).
	PrevParts int `json:"prev_parts,omitempty"`
	// Keep: the batch keeps bodies (a 304 must find the earlier one kept).
	Keep bool `json:"keep,omitempty"`
	// Request is how the batch asks for its URLs (nil: a bare GET).
	Request *Request `json:"request,omitempty"`
	// From, when after First, is where this fetch starts in a chunk
	// whose earlier URLs an earlier fetch handed to the hash step.
	From int `json:"from,omitempty"`
	// Budget is how many bytes of bodies the fetch holds before it hands
	// what it has to the hash step and leaves the rest of the chunk to
	// another fetch (also earlier, when the worker's fetches hold its
	// backlog bound or the blob disk is full). 0: it fetches the whole
	// chunk.
	Budget int64 `json:"budget,omitempty"`
}

// Fetched is the fetch step's word on one URL: a blob to hash, or a final
// outcome.
type Fetched struct {
	Index int    `json:"i"`
	URL   string `json:"url"`
	// Blob holds the body when the fetch succeeded (Outcome is empty):
	// the exact blob the attempt that fetched it wrote, never shared with
	// another attempt.
	Blob string `json:"blob,omitempty"`
	// Off is set when Blob is a pack of the chunk's small bodies: the body
	// is the Size bytes from Off.
	Off *int64 `json:"off,omitempty"`
	// CRC32C is the Castagnoli CRC of the body's bytes as they were
	// fetched; the hash step checks the blob against it and Size.
	CRC32C    *uint32 `json:"crc32c,omitempty"`
	Outcome   string  `json:"outcome,omitempty"`
	Status    int     `json:"status"`
	Size      int64   `json:"size"`
	Attempts  int     `json:"attempts"`
	ElapsedMS int64   `json:"elapsed_ms"`
	Error     string  `json:"error,omitempty"`
	// Meta is what the response said about the body (a body's URL only).
	Meta
	// Prev is what an earlier batch said of the URL; NotModified: the
	// server answered 304 to the conditional request made from it, and
	// there is no body.
	Prev        *Prev `json:"prev,omitempty"`
	NotModified bool  `json:"nm,omitempty"`
	// NoBody: the request was a HEAD; its answer has no body, and its
	// result no sha256.
	NoBody bool `json:"nb,omitempty"`
}

// Final is the Result of a URL whose fetch ended without a body.
func (f Fetched) Final() Result {
	return Result{URL: f.URL, Outcome: f.Outcome, Status: f.Status, Size: f.Size, Attempts: f.Attempts, ElapsedMS: f.ElapsedMS, Error: f.Error}
}

// FetchChunkResult lists every URL of the chunk in chunk order.
type FetchChunkResult struct {
	Items []Fetched `json:"items"`
	// Store is the identity of the blob store the bodies are in
	// (blobstore.ID); the hash step refuses to work from another.
	Store string `json:"store,omitempty"`
	// Backlog is the fetch worker's bound on the bytes a batch may have
	// fetched and not yet hashed (--hash-backlog): the workflow starts no
	// new fetch while that many wait.
	Backlog int64 `json:"backlog,omitempty"`
	// Worker is the fetch worker that ran it (nil from one whose fetch
	// slots are not capped, or from earlier releases).
	Worker *FetchWorker `json:"worker,omitempty"`
	// Hosts are the hosts its URLs waited for most, and its slowest, under
	// a per_host rule (nil without one, or from earlier releases).
	Hosts []HostView `json:"hosts,omitempty"`
}

// FetchWorker names a fetch worker and says how many requests it has
// open at once at most (its fetch slots, over every batch it serves).
type FetchWorker struct {
	Identity   string `json:"identity"`
	FetchSlots int    `json:"fetch_slots"`
}

// HashChunkRequest asks for the fetched bodies of a chunk to be hashed.
type HashChunkRequest struct {
	Prefix string    `json:"prefix"`
	Chunk  int       `json:"chunk"`
	Items  []Fetched `json:"items"`
	// Store is the identity of the blob store the fetch wrote to.
	Store string `json:"store,omitempty"`
	// Staged: write the chunk's results to the blob store (ResultsKey)
	// instead of returning them.
	Staged bool `json:"staged,omitempty"`
	// Compare: the batch was given earlier results; each result (but a
	// canceled one) says whether it changed (ChangedSince).
	Compare bool `json:"compare,omitempty"`
	// Keep: keep each ok body under bodies/sha256/<hex>.
	Keep bool `json:"keep,omitempty"`
	// Process names the CPU step ("" or "sha256": the hash alone), and
	// ProcessedPrefix is where outputs too large for a result go.
	Process         string `json:"process,omitempty"`
	ProcessedPrefix string `json:"processed_prefix,omitempty"`
	// First and From: the Items are the part of a staged chunk from URL
	// From, whose first URL is First (see FetchChunkRequest).
	First int `json:"first,omitempty"`
	From  int `json:"from,omitempty"`
}

// PrevKey is where staging puts part n of the earlier results of a staged
// batch's chunk: JSON lines of IndexedPrev.
func PrevKey(prefix string, chunk, n int) string {
	return fmt.Sprintf("%s/prev/%06d.%d.jsonl", prefix, chunk, n)
}

// IndexedPrev is the Prev of the URL at Index of a batch, and the
// processed output of its earlier body (Earlier), which only the results'
// assembly reads: it never travels with the chunk's URLs.
type IndexedPrev struct {
	Index int    `json:"i"`
	URL   string `json:"u"`
	Prev
	Processed    json.RawMessage `json:"processed,omitempty"`
	ProcessedKey string          `json:"processed_key,omitempty"`
}

// KeptBodyKey is where a kept body with the given sha256 (hex) is.
func KeptBodyKey(sha string) string { return "bodies/sha256/" + sha }

// HashChunkResult holds the chunk's final results or, for a staged batch,
// only their counts (the results are in the blob store).
type HashChunkResult struct {
	Results []Result `json:"results,omitempty"`
	OK      int      `json:"ok"`
	Failed  int      `json:"failed"`
	// NotModified and Changed count the chunk's not_modified results and
	// its changed ones.
	NotModified int `json:"not_modified,omitempty"`
	Changed     int `json:"changed,omitempty"`
	// FirstFailed is the first URL of the chunk that did not end ok.
	FirstFailed *Result `json:"first_failed,omitempty"`
}

// WorkPrefix is where the fetch of a run of a batch's URLs, from the one
// at index first (a chunk, one URL of a small batch), keeps their bodies
// until the hash step has recorded them: the workflow then has a later
// activity remove it (RemoveWork), so a batch's scratch space follows the
// work in flight, not the batch.
func WorkPrefix(prefix string, first int) string {
	return fmt.Sprintf("%s/work/%09d", prefix, first)
}

// BodyKey is where the bodies of URL index go, in its run's work
// directory: each attempt writes a blob of its own, BodyKey(work, index) +
// "." + a random token.
func BodyKey(work string, index int) string {
	return fmt.Sprintf("%s/%09d", work, index)
}

// attemptKey names the blob one attempt at a URL writes: no two attempts,
// on any worker, share one.
func attemptKey(work string, index int) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return BodyKey(work, index) + "." + hex.EncodeToString(b[:])
}

// URLsKey holds a staged chunk's URLs, one per line.
func URLsKey(prefix string, chunk int) string { return fmt.Sprintf("%s/urls/%06d.txt", prefix, chunk) }

// ResultsKey holds a staged chunk's results as JSON lines, written by the
// hash step when the chunk completes.
func ResultsKey(prefix string, chunk int) string {
	return fmt.Sprintf("%s/results/%06d.jsonl", prefix, chunk)
}

// StoppedResultsKey holds the results of a staged chunk that did not
// complete: written when its batch is canceled (what was done so far) or
// when its activities finally failed (each URL with its error).
// AssembleResults reads it only when ResultsKey is missing.
func StoppedResultsKey(prefix string, chunk int) string {
	return fmt.Sprintf("%s/results/%06d.stopped.jsonl", prefix, chunk)
}

// piece is where a fetch or hash of part of a chunk starts (from), or 0
// for one that starts where the chunk does (first).
func piece(first, from int) int {
	if from > first {
		return from
	}
	return 0
}

// ResultsKeyFrom holds the results of the part of a staged chunk from
// URL from (0: from its start: ResultsKey), when an earlier fetch handed
// the URLs before it to the hash step on their own. AssembleResults
// reads a chunk's parts one after the other.
func ResultsKeyFrom(prefix string, chunk, from int) string {
	if from == 0 {
		return ResultsKey(prefix, chunk)
	}
	return fmt.Sprintf("%s/results/%06d.%09d.jsonl", prefix, chunk, from)
}

// StoppedResultsKeyFrom is StoppedResultsKey for the part of a chunk
// from URL from (0: from its start).
func StoppedResultsKeyFrom(prefix string, chunk, from int) string {
	if from == 0 {
		return StoppedResultsKey(prefix, chunk)
	}
	return fmt.Sprintf("%s/results/%06d.%09d.stopped.jsonl", prefix, chunk, from)
}

// MaxErrorText bounds the error text one URL's result carries, as JSON
// encodes it (where <, >, & and control characters take six bytes each),
// so that no payload grows with an error chain or a server's reason
// phrase.
const MaxErrorText = 1024

// TruncateError shortens s so that its JSON encoding takes at most
// MaxErrorText bytes, cutting on a rune boundary.
func TruncateError(s string) string {
	if JSONLen(s) <= MaxErrorText {
		return s
	}
	const more = " …"
	budget := MaxErrorText - len(more)
	n := 0
	for i, r := range s {
		c := runeCost(r, s[i:])
		if n+c > budget {
			return s[:i] + more
		}
		n += c
	}
	return s
}

// JSONLen is how many bytes s takes inside a JSON string as Go encodes it
// (quotes not counted): <, >, & and control characters take six.
func JSONLen(s string) int {
	n := 0
	for i, r := range s {
		n += runeCost(r, s[i:])
	}
	return n
}

func runeCost(r rune, rest string) int {
	switch {
	case r == utf8.RuneError:
		if _, size := utf8.DecodeRuneInString(rest); size <= 1 {
			return 6 // an invalid byte becomes \ufffd
		}
		return 3
	case r == '<' || r == '>' || r == '&' || r < 0x20 || r == 0x2028 || r == 0x2029:
		return 6
	case r == '"' || r == '\\':
		return 2
	default:
		return utf8.RuneLen(r)
	}
}
