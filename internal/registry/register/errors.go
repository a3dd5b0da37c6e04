package register

import "fmt"

// Error is a registration refused, or a negative verdict: its Code
// (VERSION_NOT_NEWER, BREAKING_CHANGE, FRAMEWORK_NOT_FOUND,
// FRAMEWORK_INACTIVE, VERSION_EXISTS, HASH_MISMATCH, FRAMEWORK_INVALID,
// SPEC_INVALID, SPEC_NOT_FOUND, SPEC_AMBIGUOUS) is stable; a refusal that was recorded carries the
// registration's result.
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

// ErrorResult returns the refused registration's result, or nil.
func (e *Error) ErrorResult() any { return e.result }

// reason is the error as the ledger records it: "CODE: message".
func (e *Error) reason() string { return e.code + ": " + e.msg }

func errorf(code, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...)}
}

func invalidf(code, format string, args ...any) *Error {
	return errorf(code, format, args...)
}
