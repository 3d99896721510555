package workflows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/politeness"
	"github.com/batchfetch/batchfetch/process"
)

// Limits on one batch. Larger inputs are refused with InvalidInput.
const (
	// MaxURLs is the most URLs one batch takes (inline URLs are also
	// bound by Temporal's 2 MB payload limit: use urls_file beyond ~20,000).
	MaxURLs = activities.MaxURLs
	// MaxInFlightLimit is the highest max_in_flight accepted. Fetches are
	// counted in URLs, not activities: a staged batch holds one pending
	// activity per chunk of StagedChunkSize URLs, so even this many in
	// flight keeps a run far under Temporal's pending-activity limit.
	MaxInFlightLimit = 5000
	// MaxAttemptsLimit is the highest max_attempts accepted.
	MaxAttemptsLimit = 100
	// MaxDuration bounds every duration in the input.
	MaxDuration = 24 * time.Hour
)

// Defaults for the optional input fields.
const (
	DefaultMaxInFlight    = 100
	DefaultAttemptTimeout = 30 * time.Second
	DefaultMaxAttempts    = 3
	DefaultInitialBackoff = 500 * time.Millisecond
)

// Input is the workflow's one argument: the JSON object that
// `temporal workflow start --input` sends. Zero values take the defaults.
type Input struct {
	// URLs to fetch: absolute http or https URLs. Duplicates are allowed
	// and fetched (and reported) once per occurrence.
	URLs []string `json:"urls"`
	// Mode is "collect" (default) or "fail_fast".
	Mode string `json:"mode,omitempty"`
	// MaxInFlight is how many fetches run at once for the batch (default 100).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// AttemptTimeout bounds one attempt, as a Go duration (default "30s").
	AttemptTimeout string `json:"attempt_timeout,omitempty"`
	// URLTimeout bounds one URL, retries and backoff included (default: none).
	URLTimeout string `json:"url_timeout,omitempty"`
	// MaxAttempts per URL, the first one included (default 3).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// InitialBackoff before the first retry, doubling after each (default "500ms").
	InitialBackoff string `json:"initial_backoff,omitempty"`
	// CPUTaskQueue serves the hash step (default "batchfetch-cpu").
	CPUTaskQueue string `json:"cpu_task_queue,omitempty"`
	// URLsFile replaces URLs for large batches: the key of a text file in
	// the workers' blob store, one URL per line (# comments allowed).
	URLsFile string `json:"urls_file,omitempty"`
	// KeepBodies keeps each ok body in the blob store under
	// bodies/sha256/<hex> (its result's body_key).
	KeepBodies bool `json:"keep_bodies,omitempty"`
	// Process names the CPU step: "sha256" (default: the hash alone),
	// "html", "image", or a processor registered on the CPU workers.
	Process string `json:"process,omitempty"`
	// Previous are earlier results (an earlier batch's results, as they
	// are): each URL's validators make its request conditional, and each
	// ok result says whether its body changed. PreviousFile is the key of
	// an earlier results file (JSON lines) in the blob store instead.
	Previous     []Result `json:"previous,omitempty"`
	PreviousFile string   `json:"previous_file,omitempty"`
	// Incremental names a chain of batches (a schedule's): each reads the
	// results the last one that completed left under IncrementalKey as
	// its previous_file, and leaves its own there when it completes.
	Incremental string `json:"incremental,omitempty"`
	// RemoveInputs: the batch owns its urls_file, previous_file and
	// body's key, and removes them from the blob store when it ends (completed, failed or
	// canceled). The starter sets it for the files it uploads.
	RemoveInputs bool `json:"remove_inputs,omitempty"`
	// Robots is "obey" (check each URL against its host's robots.txt
	// first: a disallowed one ends robots_disallowed, unrequested) or
	// "ignore" (the default: fetch every URL as given).
	Robots string `json:"robots,omitempty"`
	// RequestFields say how every URL is asked for: headers (whose
	// values may name secrets the fetch workers hold), method, body and
	// retry_non_idempotent. A URL's own entry may give its own (see
	// URLRequests); they win, header by header.
	activities.RequestFields
	// URLRequests, parallel to URLs, are the URLs' own request fields
	// (nil, or nil entries, for plain URLs). In JSON they are the urls
	// entries that are objects: {"url": ..., "headers": {...}}.
	URLRequests []*activities.RequestFields `json:"-"`
	// PerHost limits the batch's requests to each host (nil: no limit
	// but the fetch workers' own defaults).
	PerHost *PerHost `json:"per_host,omitempty"`

	// decodeErr records why the JSON form could not be decoded, so the
	// workflow can fail with InvalidInput instead of failing its task.
	decodeErr string
}

// wireInput is Input as it arrives in JSON: pointers tell an explicit zero
// from an absent field.
type wireInput struct {
	URLs           []json.RawMessage `json:"urls"`
	Mode           *string           `json:"mode"`
	MaxInFlight    *int              `json:"max_in_flight"`
	AttemptTimeout *string           `json:"attempt_timeout"`
	URLTimeout     *string           `json:"url_timeout"`
	MaxAttempts    *int              `json:"max_attempts"`
	InitialBackoff *string           `json:"initial_backoff"`
	CPUTaskQueue   *string           `json:"cpu_task_queue"`
	URLsFile       *string           `json:"urls_file"`
	KeepBodies     *bool             `json:"keep_bodies"`
	Process        *string           `json:"process"`
	Previous       []Result          `json:"previous"`
	PreviousFile   *string           `json:"previous_file"`
	Incremental    *string           `json:"incremental"`
	RemoveInputs   *bool             `json:"remove_inputs"`
	Robots         *string           `json:"robots"`
	PerHost        *wirePerHost      `json:"per_host"`
	activities.RequestFields
}

// UnmarshalJSON never fails: a malformed input is remembered and reported
// by Validate, so the workflow fails cleanly with InvalidInput (a decode
// error would instead fail the workflow task over and over).
func (in *Input) UnmarshalJSON(b []byte) error {
	*in = Input{}
	var w wireInput
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		in.decodeErr = describeJSONError(err)
		return nil
	}
	if dec.More() {
		in.decodeErr = "input: trailing data after the JSON object"
		return nil
	}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		in.decodeErr = "input: expected a JSON object, got null"
		return nil
	}
	if msg := in.readURLs(w.URLs); msg != "" {
		in.decodeErr = msg
		return nil
	}
	in.RequestFields = w.RequestFields
	if in.PerHost, in.decodeErr = w.PerHost.read(); in.decodeErr != "" {
		return nil
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	in.Mode, in.AttemptTimeout, in.URLTimeout = str(w.Mode), str(w.AttemptTimeout), str(w.URLTimeout)
	in.InitialBackoff, in.CPUTaskQueue, in.URLsFile = str(w.InitialBackoff), str(w.CPUTaskQueue), str(w.URLsFile)
	in.Process, in.Robots = str(w.Process), str(w.Robots)
	in.Previous, in.PreviousFile, in.Incremental = w.Previous, str(w.PreviousFile), str(w.Incremental)
	in.KeepBodies = w.KeepBodies != nil && *w.KeepBodies
	in.RemoveInputs = w.RemoveInputs != nil && *w.RemoveInputs
	// An explicit 0 is an error, not "use the default".
	for _, f := range []struct {
		name string
		v    *int
		dst  *int
	}{{"max_in_flight", w.MaxInFlight, &in.MaxInFlight}, {"max_attempts", w.MaxAttempts, &in.MaxAttempts}} {
		if f.v == nil {
			continue
		}
		if *f.v <= 0 {
			in.decodeErr = fmt.Sprintf("%s: must be at least 1, got %d", f.name, *f.v)
			return nil
		}
		*f.dst = *f.v
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"mode", w.Mode}, {"attempt_timeout", w.AttemptTimeout}, {"url_timeout", w.URLTimeout}, {"initial_backoff", w.InitialBackoff}, {"cpu_task_queue", w.CPUTaskQueue}, {"urls_file", w.URLsFile}, {"process", w.Process}, {"previous_file", w.PreviousFile}, {"incremental", w.Incremental}, {"robots", w.Robots}} {
		if f.v != nil && *f.v == "" {
			in.decodeErr = fmt.Sprintf("%s: must not be empty (leave it out for the default)", f.name)
			return nil
		}
	}
	return nil
}

// Settings is a validated Input with its defaults applied.
//
// Its JSON names are its field names: running parts were started with
// them, and a renamed field would read as zero when they replay.
type Settings struct {
	URLs           []string      `json:"URLs"`
	FailFast       bool          `json:"FailFast"`
	MaxInFlight    int           `json:"MaxInFlight"`
	AttemptTimeout time.Duration `json:"AttemptTimeout"`
	URLTimeout     time.Duration `json:"URLTimeout"` // 0: none
	MaxAttempts    int           `json:"MaxAttempts"`
	InitialBackoff time.Duration `json:"InitialBackoff"`
	CPUTaskQueue   string        `json:"CPUTaskQueue"`
	URLsFile       string        `json:"URLsFile"`
	KeepBodies     bool          `json:"KeepBodies,omitempty"`
	// Process is the CPU step besides the hash: "" for the hash alone.
	Process string `json:"Process,omitempty"`
	// Previous, PreviousFile and Incremental as in Input; Compare: one of
	// them was given (ok results say whether they changed).
	Previous     []Result `json:"Previous,omitempty"`
	PreviousFile string   `json:"PreviousFile,omitempty"`
	Incremental  string   `json:"Incremental,omitempty"`
	Compare      bool     `json:"Compare,omitempty"`
	// Request is how every URL is asked for (nil: a bare GET); PerURL,
	// parallel to URLs (or nil), each URL's own, which wins over it.
	Request *activities.Request   `json:"Request,omitempty"`
	PerURL  []*activities.Request `json:"PerURL,omitempty"`
	// Robots as in Input ("": DefaultRobots).
	Robots string `json:"Robots,omitempty"`
	// PerHost is the batch's per-host rule (nil: none).
	PerHost *politeness.Rule `json:"PerHost,omitempty"`
}

// Validate checks an input and applies defaults. Its error names the bad
// field or URL; the workflow wraps it as a non-retryable InvalidInput.
func (in Input) Validate() (Settings, error) {
	if in.decodeErr != "" {
		return Settings{}, fmt.Errorf("%s", in.decodeErr)
	}
	s := Settings{
		MaxInFlight:    DefaultMaxInFlight,
		AttemptTimeout: DefaultAttemptTimeout,
		MaxAttempts:    DefaultMaxAttempts,
		InitialBackoff: DefaultInitialBackoff,
		CPUTaskQueue:   CPUTaskQueue,
	}
	switch {
	case in.URLsFile != "" && len(in.URLs) > 0:
		return s, fmt.Errorf("urls and urls_file: give one or the other")
	case in.URLsFile != "":
		if err := checkKey(in.URLsFile); err != nil {
			return s, fmt.Errorf("urls_file: %w", err)
		}
		s.URLsFile = in.URLsFile
	case len(in.URLs) == 0:
		return s, fmt.Errorf("urls: must list at least one URL")
	}
	if len(in.URLs) > MaxURLs {
		return s, fmt.Errorf("urls: %d URLs is over the limit of %d per batch", len(in.URLs), MaxURLs)
	}
	for i, raw := range in.URLs {
		if err := CheckURL(raw); err != nil {
			return s, fmt.Errorf("urls[%d]: %w", i, err)
		}
	}
	s.URLs = in.URLs
	if err := in.requests(&s); err != nil {
		return s, err
	}

	switch in.Mode {
	case "", ModeCollect:
	case ModeFailFast:
		s.FailFast = true
	default:
		return s, fmt.Errorf("mode: %q is not one of %q, %q", clip(in.Mode), ModeCollect, ModeFailFast)
	}
	if in.MaxInFlight < 0 || in.MaxInFlight > MaxInFlightLimit {
		return s, fmt.Errorf("max_in_flight: must be between 1 and %d, got %d", MaxInFlightLimit, in.MaxInFlight)
	}
	if in.MaxInFlight > 0 {
		s.MaxInFlight = in.MaxInFlight
	}
	if in.MaxAttempts < 0 || in.MaxAttempts > MaxAttemptsLimit {
		return s, fmt.Errorf("max_attempts: must be between 1 and %d, got %d", MaxAttemptsLimit, in.MaxAttempts)
	}
	if in.MaxAttempts > 0 {
		s.MaxAttempts = in.MaxAttempts
	}
	var err error
	if s.AttemptTimeout, err = parseDuration("attempt_timeout", in.AttemptTimeout, s.AttemptTimeout); err != nil {
		return s, err
	}
	if s.URLTimeout, err = parseDuration("url_timeout", in.URLTimeout, 0); err != nil {
		return s, err
	}
	if s.InitialBackoff, err = parseDuration("initial_backoff", in.InitialBackoff, s.InitialBackoff); err != nil {
		return s, err
	}
	if in.CPUTaskQueue != "" {
		if len(in.CPUTaskQueue) > 1000 {
			return s, fmt.Errorf("cpu_task_queue: longer than 1000 bytes")
		}
		s.CPUTaskQueue = in.CPUTaskQueue
	}
	s.KeepBodies = in.KeepBodies
	given := 0
	for _, g := range []bool{in.Previous != nil, in.PreviousFile != "", in.Incremental != ""} {
		if g {
			given++
		}
	}
	if given > 1 {
		return s, fmt.Errorf("previous, previous_file and incremental: give one of them")
	}
	for i, r := range in.Previous {
		if err := activities.CheckPrevious(r); err != nil {
			return s, fmt.Errorf("previous[%d]: %w", i, err)
		}
	}
	if in.PreviousFile != "" {
		if err := checkKey(in.PreviousFile); err != nil {
			return s, fmt.Errorf("previous_file: %w", err)
		}
	}
	if in.Incremental != "" && !incrementalName.MatchString(in.Incremental) {
		return s, fmt.Errorf("incremental: %q is not a name of letters, digits, '.', '_' and '-' (at most 200)", clip(in.Incremental))
	}
	s.Previous, s.PreviousFile, s.Incremental, s.Compare = in.Previous, in.PreviousFile, in.Incremental, given > 0
	if err := activities.CheckRobots(in.Robots); err != nil {
		return s, err
	}
	s.Robots = in.Robots
	if s.PerHost, err = in.PerHost.rule(); err != nil {
		return s, err
	}
	if in.Process != "" && in.Process != process.SHA256 {
		if err := process.CheckName(in.Process); err != nil {
			return s, fmt.Errorf("process: %w (built in: sha256, html, image)", err)
		}
		s.Process = in.Process
	}
	return s, nil
}

var incrementalName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// IncrementalKey is where the last completed batch of the chain name left
// its results.
func IncrementalKey(name string) string { return "incremental/" + name + ".jsonl" }

// Builtin tells whether name is a CPU step every CPU worker has.
func builtinProcess(name string) bool {
	_, ok := process.Builtins()[name]
	return ok || name == "" || name == process.SHA256
}

// checkKey accepts a relative, clean, slash-separated blob store key.
func checkKey(k string) error {
	if len(k) > 1024 || strings.HasPrefix(k, "/") || strings.Contains(k, "\\") || path.Clean(k) != k || k == ".." || strings.HasPrefix(k, "../") {
		return fmt.Errorf("%q is not a key in the blob store (a relative path such as \"inputs/urls.txt\")", clip(k))
	}
	return nil
}

func parseDuration(field, v string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration such as \"1.5s\" or \"2m\"", field, clip(v))
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: must be positive, got %q", field, v)
	}
	if d > MaxDuration {
		return 0, fmt.Errorf("%s: %s is over the limit of %s", field, d, MaxDuration)
	}
	return d, nil
}

// clip keeps error messages readable when a field is huge.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// CheckURL says what is wrong with a URL the batch could not fetch (not
// absolute, not http or https, no host, too long), or nil. Input.Validate
// checks every URL with it.
func CheckURL(raw string) error { return activities.CheckURL(raw) }
