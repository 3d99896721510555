package activities

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
)

// hashCheckpoint is the hash activity's heartbeat: the results so far and
// the state of the body under way (its blob, how far the hash got, the
// sha256 and CRC-32C states there), so a retried chunk (after a worker
// crash) resumes mid-body instead of from byte zero.
type hashCheckpoint struct {
	// Summary says in a line how far the chunk is ("37/500 hashed"),
	// for people reading the pending activity in the Web UI. Nothing
	// reads it back: a checkpoint without it resumes the same.
	Summary string   `json:"summary,omitempty"`
	Results []Result `json:"results"`
	// Step is the processor's last progress report (for people watching).
	Step   string `json:"step,omitempty"`
	Blob   string `json:"blob,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	State  []byte `json:"state,omitempty"`
	CRC32C uint32 `json:"crc32c,omitempty"`
}

// resumeOf is where the hash of item i (it) resumes from, if the
// checkpoint was taken in its body.
func (cp *hashCheckpoint) resumeOf(i int, it Fetched) *hashState {
	if i == len(cp.Results) && cp.Blob == it.Blob && cp.State != nil {
		return &hashState{Offset: cp.Offset, State: cp.State, CRC32C: cp.CRC32C}
	}
	return nil
}

// hashProgress is what a hash attempt has done, shared with its
// heartbeat: the results so far, and the body under way (its blob, how
// far its hash got, its step).
type hashProgress struct {
	mu      sync.Mutex
	staged  bool
	total   int // the chunk's bodies and final outcomes, for the summary
	results []Result
	curBlob string
	cur     *hashState
	side    *sideways
}

// checkpoint is the heartbeat's details.
func (p *hashProgress) checkpoint() hashCheckpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := hashCheckpoint{Results: p.results, Summary: fmt.Sprintf("%d/%d hashed", len(p.results), p.total)}
	if p.staged {
		// The URLs are in the chunk's file: a checkpoint of a
		// hundred long URLs would be large.
		c.Results = make([]Result, len(p.results))
		for i, r := range p.results {
			r.URL = ""
			c.Results[i] = r
		}
	}
	if k := checkpointable(c.Results); k < len(c.Results) {
		// Large processor outputs: the checkpoint keeps the results
		// that fit, and a retry redoes the others.
		c.Results = c.Results[:k]
		return c
	}
	if p.cur != nil {
		c.Blob, c.Offset, c.State, c.CRC32C = p.curBlob, p.cur.Offset, p.cur.State, p.cur.CRC32C
	}
	c.Step = p.side.progress()
	return c
}

// starting notes the body whose hash begins.
func (p *hashProgress) starting(blob string) {
	p.mu.Lock()
	p.curBlob, p.cur = blob, nil
	p.mu.Unlock()
}

// sideways notes the body's step (kept copy, processor).
func (p *hashProgress) sideways(s *sideways) {
	p.mu.Lock()
	p.side = s
	p.mu.Unlock()
}

// at notes how far the body's hash got.
func (p *hashProgress) at(s hashState) {
	p.mu.Lock()
	p.cur = &s
	p.mu.Unlock()
}

// add notes an item's result: the next item is under way.
func (p *hashProgress) add(r Result) {
	p.mu.Lock()
	p.results = append(p.results, r)
	p.cur, p.side = nil, nil
	p.mu.Unlock()
}

// checkpointBudget bounds a hash checkpoint: Temporal refuses heartbeat
// details over 2 MB.
const checkpointBudget = 1 << 20

// checkpointable is how many of results, from the first, fit in a
// checkpoint.
func checkpointable(results []Result) int {
	n := 0
	for i := range results {
		n += 1024 + JSONLen(results[i].URL) + JSONLen(results[i].Error) + len(results[i].Processed)
		if n > checkpointBudget {
			return i
		}
	}
	return len(results)
}

// notModified is the result of a URL the server said had not changed
// since the earlier result it was asked about: that result's body.
func notModified(it Fetched) Result {
	p := it.Prev
	if p == nil {
		p = &Prev{}
	}
	changed := false
	r := Result{URL: it.URL, Outcome: OutcomeNotModified, Status: it.Status, Attempts: it.Attempts, ElapsedMS: it.ElapsedMS,
		SHA256: p.SHA256, Size: p.Size, BodyKey: p.BodyKey, ContentType: p.ContentType, ETag: p.ETag, LastModified: p.LastModified, Date: p.Date, Changed: &changed}
	// The earlier validators stand (the 304 answered them); those the 304
	// adds fill the gaps. A Date goes with the Last-Modified of its
	// response: the 304's when it names the same Last-Modified.
	if r.ETag == "" {
		r.ETag = it.ETag
	}
	switch {
	case r.LastModified == "":
		r.LastModified, r.Date = it.LastModified, it.Date
	case it.LastModified == r.LastModified && it.Date != "":
		r.Date = it.Date
	}
	if r.ContentType == "" {
		r.ContentType = it.ContentType
	}
	return r
}

// countResults counts a chunk's results.
func countResults(results []Result) *HashChunkResult {
	out := &HashChunkResult{}
	for i := range results {
		if r := results[i]; Succeeded(r.Outcome) {
			out.OK++
			if r.Outcome == OutcomeNotModified {
				out.NotModified++
			}
			if r.Changed != nil && *r.Changed {
				out.Changed++
			}
			continue
		}
		out.Failed++
		if out.FirstFailed == nil && results[i].Outcome != OutcomeCanceled {
			out.FirstFailed = &results[i]
		}
	}
	return out
}

// stopped ends a hash attempt whose context was canceled. When the
// workflow asked for it, the results so far (and the URLs it never got
// to, as canceled) go back with the cancellation, or to the blob store
// for a staged batch. An attempt the server gave up on (a zombie) returns
// nothing: another attempt owns the chunk.
func (h *Hasher) stopped(ctx context.Context, req HashChunkRequest, done []Result) (*HashChunkResult, error) {
	if !cancelRequested(ctx) {
		return nil, ctx.Err()
	}
	results := append([]Result(nil), done...)
	for _, it := range req.Items[len(done):] {
		results = append(results, stoppedResult(it, OutcomeCanceled, "canceled before hashing"))
	}
	out := countResults(results)
	if req.Staged {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := writeResults(wctx, h.Store, StoppedResultsKeyFrom(req.Prefix, req.Chunk, piece(req.First, req.From)), results); err != nil {
			activity.GetLogger(ctx).Warn("recording a canceled chunk's results failed", "chunk", req.Chunk, "error", err)
		}
	} else {
		out.Results = results
	}
	return nil, temporal.NewCanceledError(*out)
}

func writeResults(ctx context.Context, store blobstore.Store, key string, results []Result) error {
	w, err := store.Create(ctx, key)
	if err != nil {
		return err
	}
	defer w.Abort() //nolint:errcheck
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	for i := range results {
		if err := enc.Encode(&results[i]); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return w.Commit()
}
