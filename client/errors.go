package client

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/workflows"
)

// InvalidInputError is a batch's input refused: by Start before anything
// started, or by the workflow (an InvalidInput ApplicationError: a bad
// urls_file line, a process no CPU worker has). Nothing was fetched.
type InvalidInputError struct {
	// Message says what is wrong, naming the field or URL first
	// ("urls[3]: ...", "urls_file line 17: ...").
	Message string
	// Field is the field or URL the message names ("urls[3]",
	// "max_in_flight", "urls_file line 17"), or "" when it names none.
	Field string
	// Err is the error the message came from.
	Err error
}

func (e *InvalidInputError) Error() string { return "invalid input: " + e.Message }

// Unwrap returns the error the message came from.
func (e *InvalidInputError) Unwrap() error { return e.Err }

// BatchFailedError is a batch that failed: a fail_fast batch stopped at
// its first failed URL (Output holds what it had done, the rest
// canceled), or one that failed otherwise (terminated, timed out, an
// error of its own; Output is nil).
type BatchFailedError struct {
	// Output is the batch's partial output, or nil when its failure
	// carried none.
	Output *workflows.Output
	// Err is the failure the batch ended with.
	Err error
}

func (e *BatchFailedError) Error() string { return "batch failed: " + workflows.PlainMessage(e.Err) }

// Unwrap returns the failure the batch ended with.
func (e *BatchFailedError) Unwrap() error { return e.Err }

// CanceledError is a batch that was canceled. Output holds what it had
// done: URLs finished before the cancel with their results, the rest
// canceled; nil for a batch canceled before its URLs were staged.
type CanceledError struct {
	Output *workflows.Output
	// Err is the SDK's *temporal.CanceledError.
	Err error
}

func (e *CanceledError) Error() string {
	if e.Output == nil {
		return "batch canceled"
	}
	return fmt.Sprintf("batch canceled: %d of %d URLs ok", e.Output.OK, e.Output.Total)
}

// Unwrap returns the SDK's *temporal.CanceledError.
func (e *CanceledError) Unwrap() error { return e.Err }

// batchError turns the error a batch's run ended with into one of the
// errors above. An error that is no end of the batch (the context ended,
// the server could not be reached) is returned as it is.
func batchError(err error) error {
	var ended *temporal.WorkflowExecutionError
	if err == nil || !errors.As(err, &ended) {
		return err
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		out, _ := workflows.CanceledOutput(err)
		return &CanceledError{Output: out, Err: canceled}
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case workflows.InvalidInputType:
			return invalidInput(appErr.Message(), appErr)
		case workflows.BatchFailedType:
			var out workflows.Output
			if !appErr.HasDetails() || appErr.Details(&out) != nil {
				return &BatchFailedError{Err: appErr}
			}
			return &BatchFailedError{Output: &out, Err: appErr}
		}
	}
	cause := errors.Unwrap(ended)
	if cause == nil {
		cause = ended
	}
	return &BatchFailedError{Err: cause}
}

// invalidInput is the InvalidInputError of a message that names the
// field first ("urls[3]: ...").
func invalidInput(msg string, err error) *InvalidInputError {
	e := &InvalidInputError{Message: msg, Err: err}
	if name, _, ok := strings.Cut(msg, ": "); ok && fieldName.MatchString(name) && name != "input" {
		e.Field = name
	}
	return e
}

// fieldName is what names a field, an entry or a line of one.
var fieldName = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+|\[[^\]]*\])*( line [0-9]+)?$`)
