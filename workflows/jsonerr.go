package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// describeJSONError says what is wrong with an input that does not
// decode, naming the field.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fmt.Sprintf("input: expected a JSON object, got %s", typeErr.Value)
		}
		return fmt.Sprintf("%s: wrong JSON type: got %s, want %s", field, typeErr.Value, jsonTypeName(typeErr.Type.Kind().String()))
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("input: invalid JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return "input: invalid JSON: it ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.TrimPrefix(err.Error(), "json: unknown field ")
		if strings.Contains(field, "@") {
			// A URL pasted as a key may carry a password: not echoed.
			field = "(a name with @ in it)"
		}
		return fmt.Sprintf("input: unknown field %s", field)
	default:
		return "input: " + err.Error()
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "slice":
		return "array"
	case "int":
		return "number"
	case "struct", "ptr":
		return "object"
	}
	return kind
}
