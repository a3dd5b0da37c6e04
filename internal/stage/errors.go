package stage

import "fmt"

// Error is a refusal to stage: its Code (UNDECLARED, MISSING,
// PACKAGE_ID_MISMATCH, PREFLIGHT_FAILED, HASH_MISMATCH, MANIFEST_INVALID,
// USAGE) is stable, and it may carry a hint for the person at the
// terminal, details, and a negative verdict's full result (a failed
// preflight's report).
type Error struct {
	code    string
	msg     string
	hint    string
	details map[string]any
	result  any
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// ErrorHint returns what to do about it, or "".
func (e *Error) ErrorHint() string { return e.hint }

// ErrorDetails returns the error's details, or nil.
func (e *Error) ErrorDetails() map[string]any { return e.details }

// ErrorResult returns a negative verdict's full result, or nil.
func (e *Error) ErrorResult() any { return e.result }

// WithHint sets the error's hint and returns it.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.hint = fmt.Sprintf(format, args...)
	return e
}

// WithDetails sets the error's details and returns it.
func (e *Error) WithDetails(d map[string]any) *Error {
	e.details = d
	return e
}

func errorf(code, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...)}
}

func usagef(format string, args ...any) *Error {
	return errorf("USAGE", format, args...)
}

func invalidf(code, format string, args ...any) *Error {
	return errorf(code, format, args...)
}
