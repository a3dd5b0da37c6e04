package register

import "fmt"

// Exit classes of register's errors in the shared exit-code table
// (DESIGN.md §3); the library does not import internal/cli.
const (
	exitDenied  = 1
	exitInvalid = 3
)

// Error is a registration refused, or a negative verdict: its Code
// (VERSION_NOT_NEWER, BREAKING_CHANGE, FRAMEWORK_NOT_FOUND,
// FRAMEWORK_INACTIVE, VERSION_EXISTS, HASH_MISMATCH, FRAMEWORK_INVALID,
// SPEC_INVALID) is stable; a refusal that was recorded carries the
// registration's result.
type Error struct {
	code   string
	exit   int
	msg    string
	result any
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// ExitCode returns the exit class.
func (e *Error) ExitCode() int { return e.exit }

// ErrorResult returns the refused registration's result, or nil.
func (e *Error) ErrorResult() any { return e.result }

// reason is the error as the ledger records it: "CODE: message".
func (e *Error) reason() string { return e.code + ": " + e.msg }

func errorf(exit int, code, format string, args ...any) *Error {
	return &Error{code: code, exit: exit, msg: fmt.Sprintf(format, args...)}
}

func invalidf(code, format string, args ...any) *Error {
	return errorf(exitInvalid, code, format, args...)
}
