package workorder

import "fmt"

// Error codes of work orders (DESIGN.md §13). Every one but WO_INVALID
// (invalid input) is a refusal: the caller must not act.
const (
	CodeInvalid        = "WO_INVALID"         // a document that breaks the schema or a rule of §13 (exit 3)
	CodeNotFound       = "WO_NOT_FOUND"       // no file, or no WO_CREATED in HO2
	CodeNotApproved    = "WO_NOT_APPROVED"    // no WO_APPROVED in HO3 (created, or rejected)
	CodePayloadChanged = "WO_PAYLOAD_CHANGED" // the file's payload hash is not the recorded one
	CodeExpired        = "WO_EXPIRED"         // expires_at has passed
	CodeClosed         = "WO_CLOSED"          // cancelled, rejected, completed: nothing more happens under it
	CodeState          = "WO_STATE"           // the state does not allow the verb (approve twice)
	CodeApprovalBad    = "APPROVAL_INVALID"   // the approval note is missing, altered or does not say what was approved
	CodeSelfApproval   = "SELF_APPROVAL"      // the approver created the work order
	CodeKeyUntrusted   = "KEY_UNTRUSTED"      // the signing key is not trusted for work_order
	CodeIDsExhausted   = "WO_IDS_EXHAUSTED"   // 999 work orders already created today
)

// Error is a work-order refusal or an invalid document, with a stable
// code and the data a caller acts on.
type Error struct {
	code    string
	msg     string
	hint    string
	details map[string]any
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable code (WO_NOT_FOUND, WO_PAYLOAD_CHANGED, ...).
func (e *Error) Code() string { return e.code }

// ErrorDetails returns the error's data (wo_id, the hashes compared, ...).
func (e *Error) ErrorDetails() map[string]any { return e.details }

// ErrorHint returns what to do about it, or "".
func (e *Error) ErrorHint() string { return e.hint }

func refuse(code string, details map[string]any, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...), details: details}
}

func (e *Error) withHint(format string, args ...any) *Error {
	e.hint = fmt.Sprintf(format, args...)
	return e
}

// Error codes of sessions and turns (DESIGN.md §13).
const (
	CodeSessionMismatch = "SESSION_MISMATCH"        // the session was not opened under this work order (or is no session)
	CodeTurnOrder       = "TURN_OUT_OF_ORDER"       // turn_number is not the previous + 1 (a replay or a skip)
	CodeTurnBudget      = "TURN_BUDGET_EXCEEDED"    // the work order's budget.turns is spent
	CodeInputMismatch   = "DECLARED_INPUT_MISMATCH" // a declared input does not match disk, ledger or registry
	CodeScope           = "SCOPE_VIOLATION"         // a declared path is outside the work order's scope.paths
	// CodeOutputMismatch: a declared {path, sha256} output is not that
	// file on disk when the turn is recorded.
	CodeOutputMismatch = "DECLARED_OUTPUT_MISMATCH"
)
