package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Exit codes shared by every binary (DESIGN.md §3). Callers treat anything
// but ExitOK as "not allowed".
const (
	ExitOK          = 0 // success: a gate that passes, a verify that holds
	ExitDenied      = 1 // negative verdict: gate failed, verification failed, denied
	ExitUsage       = 2 // unknown verb or flag, bad argument
	ExitInvalid     = 3 // stdin not JSON, schema violation, malformed archive or manifest
	ExitUnavailable = 4 // lock timeout, provider or network failure, filesystem error, cancelled
	ExitInternal    = 5 // a bug or broken invariant
)

// Error is the one error type the envelope knows how to print. Library errors
// that implement Code() (and optionally ExitCode(), ErrorDetails(),
// ErrorHint() and ErrorResult(), a negative verdict's full result) are converted to it by
// AsError; everything else becomes INTERNAL or, for filesystem errors,
// UNAVAILABLE.
type Error struct {
	Exit    int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Hint    string         `json:"hint,omitempty"`
	Details map[string]any `json:"details,omitempty"`
	// Result, when set, is a negative verdict's full result (a failed verify,
	// a failed gate): printed as the envelope's result beside the error so
	// scripts find the documented shape at .result while composition stops.
	Result any `json:"-"`
	// Passthrough marks an upstream error envelope that is re-emitted verbatim.
	passthrough []byte
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given exit class and code.
func Errorf(exit int, code, format string, args ...any) *Error {
	return &Error{Exit: exit, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Usagef is a usage error (exit 2).
func Usagef(format string, args ...any) *Error {
	return Errorf(ExitUsage, "USAGE", format, args...)
}

// Invalidf is an invalid-input error (exit 3) with the given code.
func Invalidf(code, format string, args ...any) *Error {
	return Errorf(ExitInvalid, code, format, args...)
}

// WithHint sets the error's hint and returns it.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// WithDetails sets the error's details and returns it.
func (e *Error) WithDetails(d map[string]any) *Error {
	e.Details = d
	return e
}

// codeExit maps well-known error codes to their exit class, for library
// errors that carry a Code() but not an ExitCode(). Unknown codes are
// negative verdicts (exit 1): fail closed, never 0.
var codeExit = map[string]int{
	"USAGE":             ExitUsage,
	"INVALID_JSON":      ExitInvalid,
	"INVALID_INPUT":     ExitInvalid,
	"SCHEMA_VIOLATION":  ExitInvalid,
	"ARCHIVE_UNSAFE":    ExitInvalid,
	"MANIFEST_INVALID":  ExitInvalid,
	"UNSAFE_NUMBER":     ExitInvalid,
	"REQUEST_TOO_LARGE": ExitInvalid,
	"NOT_A_PLANE":       ExitUsage,
	"LOCK_TIMEOUT":      ExitUnavailable,
	"UNAVAILABLE":       ExitUnavailable,
	"IO_ERROR":          ExitUnavailable,
	"CANCELLED":         ExitUnavailable,
	"PROVIDER_ERROR":    ExitUnavailable,
	"NOT_FOUND":         ExitUnavailable,
	"PERMISSION_DENIED": ExitUnavailable,
	"INTERNAL":          ExitInternal,
}

// ExitFor returns the exit class of an error code.
func ExitFor(code string) int {
	if e, ok := codeExit[code]; ok {
		return e
	}
	return ExitDenied
}

// AsError converts any error into an *Error with a stable code and exit class.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Exit == 0 && e.passthrough == nil {
			e.Exit = ExitFor(e.Code)
		}
		return e
	}
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		out := &Error{Code: coded.Code(), Message: err.Error(), Exit: ExitFor(coded.Code())}
		var exiter interface{ ExitCode() int }
		if errors.As(err, &exiter) {
			out.Exit = exiter.ExitCode()
		}
		var detailer interface{ ErrorDetails() map[string]any }
		if errors.As(err, &detailer) {
			out.Details = detailer.ErrorDetails()
		}
		var hinter interface{ ErrorHint() string }
		if errors.As(err, &hinter) {
			out.Hint = hinter.ErrorHint()
		}
		var resulter interface{ ErrorResult() any }
		if errors.As(err, &resulter) {
			out.Result = resulter.ErrorResult()
		}
		return out
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Exit: ExitUnavailable, Code: "CANCELLED", Message: err.Error()}
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Exit: ExitUnavailable, Code: "NOT_FOUND", Message: err.Error()}
	case errors.Is(err, fs.ErrPermission):
		return &Error{Exit: ExitUnavailable, Code: "PERMISSION_DENIED", Message: err.Error()}
	}
	var pe *fs.PathError
	var le *os.LinkError
	if errors.As(err, &pe) || errors.As(err, &le) {
		return &Error{Exit: ExitUnavailable, Code: "IO_ERROR", Message: err.Error()}
	}
	return &Error{Exit: ExitInternal, Code: "INTERNAL", Message: err.Error()}
}
