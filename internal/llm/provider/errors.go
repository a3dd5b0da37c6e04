package provider

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"
)

// The codes of this package's errors (internal/cli maps them to exit
// classes: PROVIDER_ERROR and CANCELLED 4, LLM_OUTPUT_INVALID 1,
// LLM_REQUEST_INVALID and LLM_SCHEMA_UNSUPPORTED 3).
const (
	// CodeProviderError: the provider failed (an HTTP error status, a
	// network error, a timeout, a stream cut short) and retries, if the
	// failure allowed any, were exhausted.
	CodeProviderError = "PROVIDER_ERROR"
	// CodeCancelled: the caller's context ended or the caller stopped
	// reading a stream.
	CodeCancelled = "CANCELLED"
	// CodeOutputInvalid: structured output that is not JSON or does not
	// validate against the request's schema.
	CodeOutputInvalid = "LLM_OUTPUT_INVALID"
	// CodeSchemaUnsupported: a request schema package schema cannot
	// enforce (a keyword it does not support, a $ref outside the schema).
	CodeSchemaUnsupported = "LLM_SCHEMA_UNSUPPORTED"
	// CodeRequestInvalid: a request no provider should be sent.
	CodeRequestInvalid = "LLM_REQUEST_INVALID"
)

// Error is a call that did not produce a usable answer. It carries what
// the gateway records as evidence: the provider, the last HTTP status, every
// attempt, and the tokens the provider reported before it failed (charged
// like any other).
type Error struct {
	code     string
	Provider string    // the kind
	Status   int       // the last attempt's HTTP status; 0 when none came
	Message  string    // why, in the provider's words where it gave some; never a key
	Attempts []Attempt // every exchange, in order
	Usage    Usage     // tokens reported before the failure
	// Problems are the schema problems of an LLM_OUTPUT_INVALID.
	Problems []string
	// Text is the answer of an LLM_OUTPUT_INVALID (evidence: what the
	// model said), or the text streamed before a failure.
	Text string
	Err  error // the cause, if any (a context error)
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: status %d: %s", e.Provider, e.Status, e.Message)
	}
	if e.Provider != "" {
		return e.Provider + ": " + e.Message
	}
	return e.Message
}

// Code returns the error's code (see the Code constants).
func (e *Error) Code() string { return e.code }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrorDetails is the evidence a gateway error envelope carries.
func (e *Error) ErrorDetails() map[string]any {
	d := map[string]any{}
	if e.Provider != "" {
		d["provider"] = e.Provider
	}
	if e.Status != 0 {
		d["status"] = e.Status
	}
	if len(e.Attempts) > 0 {
		d["attempts"] = e.Attempts
	}
	if e.Usage != (Usage{}) {
		d["usage"] = e.Usage
	}
	if len(e.Problems) > 0 {
		d["problems"] = e.Problems
	}
	return d
}

// ErrorHint says what to do next.
func (e *Error) ErrorHint() string {
	switch e.code {
	case CodeProviderError:
		return "the provider failed after bounded retries; try again later, or check the provider's status, its base_url and the key's environment variable"
	case CodeOutputInvalid:
		return "the model's answer did not match the schema; the call is charged and recorded all the same"
	case CodeSchemaUnsupported:
		return "a schema may use only the keywords package schema supports (type enum const properties required additionalProperties items minItems maxItems pattern minLength maxLength minimum maximum oneOf anyOf allOf not $ref $defs)"
	}
	return ""
}

func invalidRequest(format string, args ...any) *Error {
	return &Error{code: CodeRequestInvalid, Message: fmt.Sprintf(format, args...)}
}

// RequestInvalid is a request the named provider kind cannot be sent.
func RequestInvalid(kind, format string, args ...any) *Error {
	e := invalidRequest(format, args...)
	e.Provider = kind
	return e
}

// ErrStopped is the cause of a stream the caller stopped reading (its
// delta callback returned an error): CANCELLED, with the usage so far.
var ErrStopped = errors.New("the caller stopped reading the stream")

// AttemptError is how an implementation reports one failed attempt to
// Retry.Do: the HTTP status (0 for none), the provider's retry-after, its
// message, and the usage it had reported. Final marks a failure no retry
// may follow (text already streamed to the caller; the caller hung up).
type AttemptError struct {
	Status     int
	RetryAfter time.Duration
	Message    string
	Usage      Usage
	Text       string
	Final      bool
	// Broken marks an answer that broke off after a 2xx status (a stream
	// cut short): retryable, unless Final.
	Broken bool
	Err    error
}

func (e *AttemptError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("status %d: %s", e.Status, e.Message)
	}
	return e.Message
}

func (e *AttemptError) Unwrap() error { return e.Err }

// Retryable reports whether a failure of this kind may succeed when tried
// again: 408, 409, 429, every 5xx (Anthropic's 529 overloaded among them)
// and no response at all (a network error, a per-attempt timeout).
func Retryable(status int) bool {
	return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500
}

// asAttempt returns err as an *AttemptError.
func asAttempt(err error) *AttemptError {
	var ae *AttemptError
	if errors.As(err, &ae) {
		return ae
	}
	return &AttemptError{Message: err.Error(), Err: err}
}

// Network reports whether err is a failure to reach the provider or a
// connection that broke (retryable), as against an answer that came whole
// but could not be read (a base URL that serves something else: not).
func Network(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}
