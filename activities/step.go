package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/blobstore"
	"github.com/batchfetch/batchfetch/internal/tracing"
	"github.com/batchfetch/batchfetch/process"
)

// UnknownProcessType is the ApplicationError type of a hash attempt asked
// for a CPU step its worker does not have. It is retried, so that a
// worker that has it can take the chunk.
const UnknownProcessType = "UnknownProcess"

// processor is the CPU step named name on this worker: nil for the hash
// alone.
func (h *Hasher) processor(name string) (process.Processor, error) {
	if name == "" || name == process.SHA256 {
		return nil, nil
	}
	procs := h.Processors
	if procs == nil {
		procs = process.Builtins()
	}
	if p, ok := procs[name]; ok && p != nil {
		return p, nil
	}
	msg := fmt.Sprintf("this CPU worker has no processor named %q (it has %s)", name, names(procs))
	if near := closest(name, procs); near != "" {
		msg += fmt.Sprintf(": did you mean %q?", near)
	}
	return nil, temporal.NewApplicationError(msg, UnknownProcessType)
}

// closest is the name of procs (or sha256) within two edits of name, the
// nearest, or "" when none is.
func closest(name string, procs map[string]process.Processor) string {
	best, dist := "", 3
	for _, n := range append(sortedNames(procs), process.SHA256) {
		if d := editDistance(name, n); d < dist {
			best, dist = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, in bytes.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := 1; i <= len(a); i++ {
		diag := row[0]
		row[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			diag, row[j] = row[j], min(row[j]+1, row[j-1]+1, diag+cost)
		}
	}
	return row[len(b)]
}

func sortedNames(procs map[string]process.Processor) []string {
	names := make([]string, 0, len(procs))
	for n := range procs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func names(procs map[string]process.Processor) string {
	var b bytes.Buffer
	b.WriteString(process.SHA256)
	for _, n := range sortedNames(procs) {
		b.WriteString(", " + n)
	}
	return b.String()
}

// sideways is what a body's single read feeds besides the hash: the kept
// copy (keep_bodies) and the processor. Its write never fails the hash
// for the processor's sake: a processor that stopped reading early (an
// image header is enough) just gets no more bytes.
type sideways struct {
	keep blobstore.UnnamedWriter

	pw      *io.PipeWriter
	done    chan struct{}
	value   any
	procErr error

	mu   sync.Mutex
	step string // the processor's last progress report

	finished bool
}

func (s *sideways) write(b []byte) error {
	if s == nil {
		return nil
	}
	if s.keep != nil {
		if _, err := s.keep.Write(b); err != nil {
			return fmt.Errorf("keeping the body: %w", err)
		}
	}
	if s.pw != nil {
		_, _ = s.pw.Write(b) // fails once the processor has returned
	}
	return nil
}

// Progress implements process.Env.
func (s *sideways) Progress(detail string) {
	s.mu.Lock()
	s.step = TruncateError(detail)
	s.mu.Unlock()
}

func (s *sideways) progress() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.step
}

// startSideways starts what a body's read feeds: keep writes the body to
// an unnamed blob, p (when not nil), the step named name, runs in a
// goroutine of its own on a pipe, in a span of its own.
func (h *Hasher) startSideways(ctx context.Context, keep bool, name string, p process.Processor, info process.Info) (*sideways, error) {
	if !keep && p == nil {
		return nil, nil
	}
	s := &sideways{}
	if keep {
		u, ok := h.Store.(blobstore.Unnamed)
		if !ok {
			return nil, temporal.NewNonRetryableApplicationError("this blob store cannot keep bodies", "KeepUnsupported", nil)
		}
		w, err := u.CreateUnnamed(ctx, "bodies/sha256")
		if err != nil {
			return nil, err
		}
		s.keep = w
	}
	if p != nil {
		pr, pw := io.Pipe()
		s.pw, s.done = pw, make(chan struct{})
		// A canceled activity unblocks a write the processor is not
		// reading.
		stop := context.AfterFunc(ctx, func() { _ = pr.CloseWithError(ctx.Err()) })
		ctx, span := tracing.Start(ctx, "process", tracing.AttrProcess.String(name))
		go func() {
			defer stop()
			defer close(s.done)
			defer func() { endSpan(span, s.procErr) }()
			defer func() {
				if r := recover(); r != nil {
					s.procErr = fmt.Errorf("panic: %v", r)
				}
				// Whatever the processor left unread is not wanted.
				_ = pr.CloseWithError(errProcessorDone)
			}()
			if h.Nice > 0 && info.Size >= NicedBody {
				// The step's thread yields to the I/O as the hash's does.
				niced(h.Nice, func() { s.value, s.procErr = p.Process(ctx, pr, info, s) })
				return
			}
			s.value, s.procErr = p.Process(ctx, pr, info, s)
		}()
	}
	return s, nil
}

var errProcessorDone = errors.New("the processor has returned")

// finish ends the processor: with ok, the body was read whole and it gets
// its end; otherwise it is stopped. It waits for the processor to return.
func (s *sideways) finish(ok bool) {
	if s == nil || s.pw == nil || s.finished {
		return
	}
	s.finished = true
	if ok {
		_ = s.pw.Close()
	} else {
		_ = s.pw.CloseWithError(errors.New("the body's read stopped"))
	}
	<-s.done
}

// abort discards the kept copy and stops the processor.
func (s *sideways) abort() {
	if s == nil {
		return
	}
	if s.keep != nil {
		_ = s.keep.Abort()
	}
	s.finish(false)
}

// complete gives r, an ok result of the body just read whole, what the
// sideways steps made of it: the processor's output (or its failure), the
// kept body's key.
func (h *Hasher) complete(ctx context.Context, s *sideways, req HashChunkRequest, index int, r *Result) error {
	if s == nil {
		return nil
	}
	s.finish(true)
	if s.pw != nil {
		if s.procErr == nil && ctx.Err() != nil {
			s.procErr = ctx.Err()
		}
		if s.procErr != nil {
			if ctx.Err() != nil {
				_ = abortKeep(s)
				return ctx.Err()
			}
			_ = abortKeep(s)
			r.Outcome, r.SHA256 = OutcomeError, ""
			r.Error = TruncateError("process " + req.Process + ": " + s.procErr.Error())
			return nil
		}
		b, err := marshalOutput(s.value)
		if err != nil || len(b) == 0 || b[0] != '{' {
			_ = abortKeep(s)
			r.Outcome, r.SHA256 = OutcomeError, ""
			r.Error = TruncateError(fmt.Sprintf("process %s: its output is not a JSON object (%T)", req.Process, s.value))
			return nil
		}
		if len(b) <= process.MaxInline {
			r.Processed = b
		} else {
			key := req.ProcessedPrefix + "/" + strconv.Itoa(index) + ".json"
			w, err := h.Store.Create(ctx, key)
			if err != nil {
				_ = abortKeep(s)
				return err
			}
			if _, err := w.Write(b); err != nil {
				_ = w.Abort()
				_ = abortKeep(s)
				return err
			}
			if err := w.Commit(); err != nil {
				_ = abortKeep(s)
				return err
			}
			r.ProcessedKey = key
		}
	}
	if s.keep != nil {
		key := KeptBodyKey(r.SHA256)
		if err := s.keep.CommitAs(key); err != nil {
			return fmt.Errorf("keeping the body: %w", err)
		}
		r.BodyKey = key
	}
	return nil
}

// marshalOutput encodes a processor's output; a MarshalJSON that panics
// is the processor's error, not the worker's.
func marshalOutput(v any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("encoding its output panicked: %v", r)
		}
	}()
	return json.Marshal(v)
}

func abortKeep(s *sideways) error {
	if s.keep == nil {
		return nil
	}
	return s.keep.Abort()
}

// CheckProcess fails (UnknownProcessType) when this CPU worker has no
// processor named name: a batch names a step a CPU worker must have.
func (h *Hasher) CheckProcess(ctx context.Context, name string) error {
	// Retried: another CPU worker of the queue may have it (the
	// workflow gives up after a number of attempts).
	_, err := h.processor(name)
	return err
}
