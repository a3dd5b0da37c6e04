package registry

import "fmt"

// Codes carried by *Error. They are stable: scripts match on them.
const (
	CodeInvalid        = "REGISTRY_INVALID" // a file, or rows handed to Update, break the format in the package doc
	CodeExists         = "REGISTRY_EXISTS"  // Create found a registry already in place
	CodeLockTimeout    = "LOCK_TIMEOUT"     // another writer held registries/.lock for DefaultLockTimeout
	CodeJournalPending = "JOURNAL_PENDING"  // an interrupted cp-install journal must be recovered before registries change
)

// Error is a registry failure that callers act on. Its Code is one of the
// Code constants: REGISTRY_INVALID and REGISTRY_EXISTS refuse (a plane
// whose registries cannot be trusted denies), LOCK_TIMEOUT and
// JOURNAL_PENDING say the registries are busy for now.
type Error struct {
	// File is the registry file at fault, relative to the plane root
	// ("registries/specs_registry.csv"): no absolute path ever reaches a
	// message that may be written to a ledger.
	File string
	// Line is the 1-based line of File at fault, or 0 when the problem is
	// not on disk (rows returned by an Update function) or not on one line.
	Line int
	// Msg says what is wrong.
	Msg string

	code string
	err  error
}

func (e *Error) Error() string {
	switch {
	case e.File == "":
		return "registry: " + e.Msg
	case e.Line == 0:
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// Unwrap returns the underlying error, if any (a *csv.ParseError, say).
func (e *Error) Unwrap() error { return e.err }

// ErrorDetails returns the file and line for the error envelope's details.
func (e *Error) ErrorDetails() map[string]any {
	d := map[string]any{}
	if e.File != "" {
		d["file"] = e.File
	}
	if e.Line > 0 {
		d["line"] = e.Line
	}
	return d
}

func invalidf(file string, line int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...), code: CodeInvalid}
}
