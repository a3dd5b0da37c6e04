package prompt

import "fmt"

// Codes carried by *Error. They are stable: scripts and the gateway match
// on them.
const (
	// CodeNotFound: the pack is not registered, or is retired (exit 1).
	CodeNotFound = "PROMPT_NOT_FOUND"
	// CodeHashMismatch: a file of the pack no longer hashes to what was
	// registered at install (exit 1).
	CodeHashMismatch = "PROMPT_HASH_MISMATCH"
	// CodeInvalid: a pack.json or template that breaks the rules of
	// Parse; at install a gate finding, at use a pack that cannot be
	// trusted (exit 1).
	CodeInvalid = "PROMPT_PACK_INVALID"
	// CodeVariablesInvalid: variables that do not validate against the
	// pack's variables schema (exit 3).
	CodeVariablesInvalid = "PROMPT_VARIABLES_INVALID"
	// CodeRenderFailed: the template could not be rendered with the
	// variables: one it uses is missing, or the text is too large (exit 3).
	CodeRenderFailed = "PROMPT_RENDER_FAILED"
)

// Error is a prompt pack that cannot be used as asked. Its Code is one of
// the Code constants.
type Error struct {
	// ID is the pack concerned.
	ID string
	// Path is the plane-relative file concerned, if any.
	Path string
	// Msg says what is wrong.
	Msg string
	// Details are extra fields for the error envelope (hashes, problems).
	Details map[string]any
	code    string
	hint    string
}

func (e *Error) Error() string { return e.Msg }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// ErrorDetails returns the pack, the file and the extra details.
func (e *Error) ErrorDetails() map[string]any {
	d := map[string]any{}
	for k, v := range e.Details {
		d[k] = v
	}
	if e.ID != "" {
		d["prompt_pack_id"] = e.ID
	}
	if e.Path != "" {
		d["path"] = e.Path
	}
	return d
}

// ErrorHint says what to do.
func (e *Error) ErrorHint() string { return e.hint }

func newErr(code, id, path, hint, format string, args ...any) *Error {
	return &Error{code: code, ID: id, Path: path, hint: hint, Msg: fmt.Sprintf(format, args...)}
}
