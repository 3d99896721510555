// Package process is the CPU step of a batch: what runs on the CPU task
// queue over each fetched body, besides its sha256.
//
// A Processor reads the body as a stream, in the same single pass that
// computes the sha256: it gets the bytes as the hash reads them, through
// a bounded buffer, and never a second read of the blob. It returns a
// small JSON-able value, which the URL's result carries as "processed".
//
// Register your own on your own CPU worker (see examples/customprocessor):
//
//	procs := process.Builtins()
//	procs["wordcount"] = process.Func(countWords)
//	w.RegisterActivity(&activities.Hasher{Store: store, Processors: procs})
//
// and start batches with "process": "wordcount".
package process

import (
	"context"
	"fmt"
	"io"
	"regexp"
)

// Info describes the body a processor reads.
type Info struct {
	URL         string
	Status      int
	ContentType string
	// Size is the body's length in bytes.
	Size int64
}

// Env is what a processor can do besides reading: report progress, shown
// in the hash activity's heartbeat (the Web UI's pending activity), and
// note a checkpoint of its own there. A retried hash starts the body
// over, so a checkpoint is for people watching, not for resuming.
type Env interface {
	Progress(detail string)
}

// Processor is a CPU step. Process reads body (it may stop early: the
// rest is still hashed) and returns a value that encodes to a JSON object
// of at most MaxInline bytes to travel in the result (a larger one is
// stored in the blob store and named in the result). It must return
// soon after ctx is canceled. An error ends the URL as "error" with the
// error's text: a body that does not suit the step is the URL's failure,
// not the batch's.
type Processor interface {
	Process(ctx context.Context, body io.Reader, info Info, env Env) (any, error)
}

// Func adapts a function to Processor.
type Func func(ctx context.Context, body io.Reader, info Info, env Env) (any, error)

// Process implements Processor.
func (f Func) Process(ctx context.Context, body io.Reader, info Info, env Env) (any, error) {
	return f(ctx, body, info, env)
}

// SHA256 is the default step's name: the sha256 and size alone, which
// every step computes.
const SHA256 = "sha256"

// MaxInline is the largest "processed" value a result carries inline.
const MaxInline = 64 << 10

// Builtins returns the built-in processors by name: "html" and "image".
// ("sha256" needs none.) The map is new on each call: add yours to it.
func Builtins() map[string]Processor {
	return map[string]Processor{"html": HTML{}, "image": Image{}}
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// CheckName tells whether name can name a processor: lower-case letters,
// digits, '_', '.' and '-', starting with a letter, at most 63 bytes.
func CheckName(name string) error {
	if len(name) > 63 {
		return fmt.Errorf("a name of %d bytes is not a processor name (at most 63)", len(name))
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q is not a processor name (lower-case letters, digits, '_', '.', '-', starting with a letter)", name)
	}
	return nil
}
