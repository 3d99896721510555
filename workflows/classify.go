package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"

	"github.com/batchfetch/batchfetch/activities"
)

// cause is what went wrong in an activity or child workflow, without the
// wrapper that names its type and event IDs.
func cause(err error) error {
	var actErr *temporal.ActivityError
	var childErr *temporal.ChildWorkflowExecutionError
	if (errors.As(err, &actErr) || errors.As(err, &childErr)) && errors.Unwrap(err) != nil {
		return errors.Unwrap(err)
	}
	return err
}

// Classify maps an activity's final error to an outcome and a message.
func Classify(err error) (outcome, message string) {
	err = cause(err)
	var canceledErr *temporal.CanceledError
	var timeoutErr *temporal.TimeoutError
	switch {
	case errors.As(err, &canceledErr):
		return OutcomeCanceled, "canceled"
	case errors.As(err, &timeoutErr):
		return OutcomeTimeout, activities.TruncateError("activity timed out: " + timeoutErr.Error())
	default:
		return OutcomeError, activities.TruncateError(PlainMessage(err))
	}
}

// PlainMessage is err's text as a person reads it: an application error's own
// message (and its cause's), without the SDK's "(type: ..., retryable:
// ...)" note on how it travelled ("" for nil).
func PlainMessage(err error) string {
	if err == nil {
		return ""
	}
	appErr, ok := err.(*temporal.ApplicationError)
	if !ok {
		return err.Error()
	}
	msg := appErr.Message()
	if c := appErr.Unwrap(); c != nil {
		msg += ": " + PlainMessage(c)
	}
	return msg
}
