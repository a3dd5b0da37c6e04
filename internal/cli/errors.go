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

// Error is the one error type the envelope knows how to print. Library
// errors carry a stable Code() and data, never an exit status: AsError
// converts them, with the exit class that the table (classes, and kinds)
// gives their code. ErrorDetails(), ErrorHint() and ErrorResult() (a
// negative verdict's full result), when a library error has them, become
// Details, Hint and Result.
// Everything else becomes INTERNAL or, for filesystem errors, UNAVAILABLE.
type Error struct {
	// Exit is the exit class. Errorf sets it for the errors the request
	// path and the command packages build; AsError sets it from classes
	// for every other error.
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

// classes is the one code-to-exit table (DESIGN.md §3): every code that a
// library, a command package or this package emits, with its exit class.
// A code not listed is a negative verdict (exit 1): fail closed, never 0.
// TestClassesComplete fails when a code emitted anywhere in the source is
// missing here.
//
// A code names a condition; where one condition has two classes (a
// MANIFEST_INVALID that cp-install's gates judged is a refusal, a
// MANIFEST_INVALID read from a file is invalid input), the error says which
// with its Kind (see kinds), not with a number.
var classes = map[string]int{
	// 2: usage, a bad argument.
	"USAGE":                ExitUsage,
	"NOT_A_PLANE":          ExitUsage, // --root or $CONTROL_PLANE names no plane
	"KEY_INVALID":          ExitUsage, // a key argument that does not load
	"OUT_OF_RANGE":         ExitUsage, // a seq or size outside the ledger
	"VERSION_NOT_FOUND":    ExitUsage, // a checkpoint that does not exist
	"PLANE_NAME_INVALID":   ExitUsage,
	"KEY_DIR_INSIDE_PLANE": ExitUsage,

	// 3: invalid input.
	"INVALID_JSON":         ExitInvalid,
	"INVALID_INPUT":        ExitInvalid,
	"SCHEMA_VIOLATION":     ExitInvalid,
	"UNSAFE_NUMBER":        ExitInvalid,
	"REQUEST_TOO_LARGE":    ExitInvalid,
	"ARCHIVE_UNSAFE":       ExitInvalid,
	"MANIFEST_INVALID":     ExitInvalid,
	"SPEC_INVALID":         ExitInvalid,
	"FRAMEWORK_INVALID":    ExitInvalid,
	"TRUSTED_KEYS_INVALID": ExitInvalid,
	"CONFIG_INVALID":       ExitInvalid, // an installed operator configuration file unowned, drifted or invalid
	"TIER_INVALID":         ExitInvalid,
	"NOT_REGULAR":          ExitInvalid, // a FIFO, device, socket or link where a file is read
	"LEDGER_LINKED":        ExitInvalid,
	"SOURCE_UNSAFE":        ExitInvalid,
	"WHERE_TIMEOUT":        ExitInvalid,
	"WHERE_TOO_LARGE":      ExitInvalid,

	// 4: unavailable; a retry may succeed.
	"UNAVAILABLE":                ExitUnavailable,
	"PROVIDER_ERROR":             ExitUnavailable,
	"LOCK_TIMEOUT":               ExitUnavailable,
	"IO_ERROR":                   ExitUnavailable,
	"NOT_FOUND":                  ExitUnavailable,
	"PERMISSION_DENIED":          ExitUnavailable,
	"CANCELLED":                  ExitUnavailable,
	"JOURNAL_PENDING":            ExitUnavailable, // cp-install recover first
	"CHECKPOINT_KEY_UNAVAILABLE": ExitUnavailable,
	"PLANE_INVALID":              ExitUnavailable, // a tier the plane should have cannot be read
	"LEDGER_UNAVAILABLE":         ExitUnavailable, // a tier's ledger database unreachable or failing: never an empty ledger
	"LEDGER_SCHEMA_NEWER":        ExitUnavailable, // the ledger database's schema is newer than this tool
	"LEDGER_MOVED":               ExitUnavailable, // the ledger moved to another store while the writer waited: run again

	// 5: internal, a bug or a broken invariant.
	"INTERNAL":        ExitInternal,
	"JOURNAL_CORRUPT": ExitInternal, // a journal that can be neither finished nor undone

	// 1: a negative verdict. Listed so that the table is the whole
	// vocabulary; a code missing here would be 1 all the same.
	// The ledger and its proofs.
	"LEDGER_INVALID":          ExitDenied,
	"LEDGER_NOT_EMPTY":        ExitDenied,
	"LEDGER_EXISTS":           ExitDenied, // export and migrate never replace a file
	"MIGRATE_REFUSED":         ExitDenied, // a move or import the tier's store does not allow
	"TORN_TAIL":               ExitDenied,
	"PROOF_INVALID":           ExitDenied,
	"CHECKPOINT_INVALID":      ExitDenied,
	"CHECKPOINT_INCONSISTENT": ExitDenied,
	"CHECKPOINT_MISSING":      ExitDenied,
	"PARENT_MISMATCH":         ExitDenied,
	"RESERVED_EVENT_TYPE":     ExitDenied,
	"RESERVED_METADATA":       ExitDenied, // a metadata key the tools stamp (_auth, _tier, ...)
	"TIER_MISMATCH":           ExitDenied, // the request path's own check of --root says 3: a tier.json that lies
	"UPSTREAM_ERROR":          ExitDenied, // an upstream error envelope without a code
	// cp-ledger verify's issue codes (in LEDGER_INVALID's result).
	"CHAIN_BROKEN":    ExitDenied,
	"SEQ_GAP":         ExitDenied,
	"MALFORMED":       ExitDenied,
	"MERKLE_MISMATCH": ExitDenied,
	"TLOG_MISSING":    ExitDenied,
	"INDEX_MISMATCH":  ExitDenied,
	// Signatures and trust.
	"SIGNATURE_MISSING": ExitDenied,
	"SIGNATURE_INVALID": ExitDenied,
	"KEY_UNTRUSTED":     ExitDenied,
	"KEY_NOT_TRUSTED":   ExitDenied,
	"KEY_IN_USE":        ExitDenied,
	"KEY_NAME_TAKEN":    ExitDenied,
	"KEY_EXISTS":        ExitDenied,
	// Registries and registration.
	"REGISTRY_INVALID":    ExitDenied, // a plane whose registries cannot be trusted denies
	"REGISTRY_EXISTS":     ExitDenied,
	"VERSION_NOT_NEWER":   ExitDenied,
	"VERSION_EXISTS":      ExitDenied,
	"BREAKING_CHANGE":     ExitDenied,
	"FRAMEWORK_NOT_FOUND": ExitDenied,
	"FRAMEWORK_INACTIVE":  ExitDenied,
	"SPEC_NOT_FOUND":      ExitDenied,
	"SPEC_AMBIGUOUS":      ExitDenied,
	// Planes and authoring.
	"PLANE_NESTED":        ExitDenied,
	"PLANE_EXISTS":        ExitDenied,
	"PLANE_DIR_NOT_EMPTY": ExitDenied,
	"PLANE_NAME_TAKEN":    ExitDenied,
	"PLANE_KEY_BOUND":     ExitDenied,
	"OUTPUT_NOT_EMPTY":    ExitDenied,
	// Installs, rollbacks and checkpoints.
	"GATE_FAILED":         ExitDenied,
	"PREFLIGHT_FAILED":    ExitDenied,
	"INTEGRITY_FAILED":    ExitDenied,
	"HASH_MISMATCH":       ExitDenied,
	"PACKAGE_ID_MISMATCH": ExitDenied,
	"SOURCE_CHANGED":      ExitDenied,
	"KERNEL_MISMATCH":     ExitDenied,
	"KERNEL_PARITY":       ExitDenied,
	"VERSION_UNRECORDED":  ExitDenied,
	"VERSION_INVALID":     ExitDenied, // stored history that is damaged: nothing is restored from it
	"OBJECT_CORRUPT":      ExitDenied,
	"STATE_UNSAFE":        ExitDenied,
	"STATE_CHANGED":       ExitDenied,
	// The gates' findings, which cp-install refuses with.
	"ARCHIVE_MISSING":    ExitDenied,
	"ASSET_NOT_IN_SPEC":  ExitDenied,
	"DEPENDENCY_INVALID": ExitDenied,
	"DEPENDENCY_MISSING": ExitDenied,
	"DEPENDENCY_VERSION": ExitDenied,
	"FRAMEWORK_MISMATCH": ExitDenied,
	"GENESIS_MISSING":    ExitDenied,
	// a gate finding: operator configuration outside a config package, or invalid in one
	"CONFIG_ASSET_INVALID": ExitDenied,

	"GENESIS_UNLINKED":   ExitDenied,
	"HARD_LINK":          ExitDenied,
	"KERNEL_MISSING":     ExitDenied,
	"KERNEL_RESERVED":    ExitDenied,
	"LEDGER_STRAY":       ExitDenied,
	"LEDGER_UNSAFE":      ExitDenied,
	"MISSING":            ExitDenied,
	"MODE_MISMATCH":      ExitDenied,
	"NOT_GOVERNED":       ExitDenied,
	"ORPHAN":             ExitDenied,
	"OWNERSHIP_CONFLICT": ExitDenied,
	"OWNER_MISMATCH":     ExitDenied,
	"PATH_CONFLICT":      ExitDenied,
	"PLANE_MISMATCH":     ExitDenied,
	"PLANE_UNSAFE":       ExitDenied,
	"RECEIPT_INVALID":    ExitDenied,
	"RECEIPT_MISMATCH":   ExitDenied,
	"RECEIPT_MISSING":    ExitDenied,
	"RECEIPT_ORPHAN":     ExitDenied,
	"RESERVED_TARGET":    ExitDenied,
	"SIZE_MISMATCH":      ExitDenied,
	"SPEC_INACTIVE":      ExitDenied,
	"TIER_UNRECORDED":    ExitDenied,
	"UNDECLARED":         ExitDenied,
	"VERSION_CONFLICT":   ExitDenied,
	"VERSION_DOWNGRADE":  ExitDenied,
	"WAIVER_UNRECORDED":  ExitDenied,
	// The firewall's refusals (DESIGN.md §8).
	"FIREWALL_DENIED": ExitDenied,
	"AUTH_MISSING":    ExitDenied,
	"AUTH_INVALID":    ExitDenied,
	"AUTH_EXPIRED":    ExitDenied,
	"AUTH_REVOKED":    ExitDenied,
	// cp-auth and the Guard (internal/auth).
	"AUTH_OFF_REFUSED":     ExitDenied,
	"AUTH_INITIALIZED":     ExitDenied,
	"AUTH_KEY_UNAVAILABLE": ExitDenied,
	"POLICY_INVALID":       ExitDenied,
	"PLANE_NOT_WRITABLE":   ExitDenied,
	"PLANE_NAME_MISSING":   ExitDenied,
	"TOOL_DENIED":          ExitDenied,
	// cp-wo and G2's question (internal/workorder).
	"WO_INVALID":         ExitInvalid, // a work-order document or id that breaks its schema or a rule of §13
	"WO_NOT_FOUND":       ExitDenied,
	"WO_NOT_APPROVED":    ExitDenied,
	"WO_PAYLOAD_CHANGED": ExitDenied,
	"WO_EXPIRED":         ExitDenied,
	"WO_CLOSED":          ExitDenied,
	"WO_STATE":           ExitDenied,
	"WO_IDS_EXHAUSTED":   ExitDenied,
	"APPROVAL_INVALID":   ExitDenied,
	"SELF_APPROVAL":      ExitDenied,
	// G2 and G3 (internal/gate/workorder.go).
	"SCOPE_VIOLATION":                ExitDenied, // a path the action touches is outside the work order's scope.paths
	"WO_REQUIRED":                    ExitDenied, // config/governance.json requires a work order and none was given
	"DEPENDENCY_CHANGE_UNAUTHORIZED": ExitDenied, // dependencies change without a dependency_add work order
	"WEAKENED_CONTROL":               ExitDenied, // a warning of G3: a dependency change no work order judged
	// Warnings of the gates (in a result's warnings, never an exit status
	// of their own): listed so that the table, and the catalogue, hold
	// every code a user reads.
	"ALREADY_INSTALLED": ExitDenied,
	"AUTH_OFF":          ExitDenied,
	"LEDGER_LEFTOVER":   ExitDenied,
	"SIGNATURE_WAIVED":  ExitDenied,
	// cp-wo start, turn, complete (internal/workorder/session.go, turn.go).
	"SESSION_MISMATCH":        ExitDenied, // the session was not opened under this work order, or its ledger is not the one opened
	"TURN_OUT_OF_ORDER":       ExitDenied, // turn_number is not the session's previous + 1 (a replay or a skip)
	"TURN_BUDGET_EXCEEDED":    ExitDenied, // the work order's budget.turns is spent
	"DECLARED_INPUT_MISMATCH": ExitDenied, // a declared input does not match the disk, the ledger or the registries
	// cp-wo turn's declared outputs (internal/workorder/turn.go).
	"DECLARED_OUTPUT_MISMATCH": ExitDenied, // a declared {path, sha256} output is not that file on disk
	// Anchors of lower-tier ledgers in their parents' (internal/plane/anchor.go, G6).
	"LEDGER_TRUNCATED":  ExitDenied, // a lower-tier ledger holds fewer entries than an anchor of it (cut, or gone)
	"ANCHOR_MISMATCH":   ExitDenied, // a lower-tier ledger's root at an anchored size is not the anchored root
	"ANCHOR_INVALID":    ExitDenied, // a CHECKPOINT_ANCHORED entry that does not hold together
	"SESSION_NOT_FOUND": ExitDenied, // a session named to anchor has no ledger
	// The LLM providers (internal/llm, internal/llm/provider); PROVIDER_ERROR and CANCELLED are 4, above.
	"LLM_OUTPUT_INVALID":     ExitDenied,      // structured output that does not validate against the request's schema
	"LLM_SCHEMA_UNSUPPORTED": ExitInvalid,     // a request schema with a keyword package schema cannot enforce
	"LLM_REQUEST_INVALID":    ExitInvalid,     // a request no provider should be sent (no model, max_tokens < 1, ...)
	"LLM_PROVIDER_UNKNOWN":   ExitDenied,      // a provider config/providers.json does not list
	"LLM_MODEL_UNKNOWN":      ExitDenied,      // a model without a price in config/providers.json
	"LLM_KEY_MISSING":        ExitUnavailable, // the provider's key variable is unset in the gateway's environment
	// The gateway (internal/llm gateway.go, budget.go; cp-llm complete).
	"BUDGET_EXCEEDED":      ExitDenied, // a call's largest possible spend would pass a budget (work order, session, cap)
	"PROMPT_PACK_REQUIRED": ExitDenied, // a worker sent a raw prompt: workers call through registered prompt packs only
	// cp-trace (internal/trace).
	"FILE_NOT_OWNED":        ExitUsage,  // cp-trace file: a path no installed package owns
	"ID_NOT_FOUND":          ExitUsage,  // cp-trace explain: an id nothing on the plane holds
	"FILE_TAMPERED":         ExitDenied, // a file whose bytes or mode are not what its owner installed
	"PROVENANCE_UNRECORDED": ExitDenied, // no ledger entry records the install of a file's owner
	"PROVENANCE_INVALID":    ExitDenied, // a file's provenance whose entries, proofs, manifest or receipt do not hold together
	// cp-mcp (internal/mcpcmd).
	"MCP_PATH_OUTSIDE_PLANE": ExitDenied, // a tool call's path argument leads outside the served plane
	// Prompt packs (internal/prompt).
	"PROMPT_NOT_FOUND":         ExitDenied,  // a pack the registry does not list, or lists as retired
	"PROMPT_HASH_MISMATCH":     ExitDenied,  // a pack's files no longer hash to its registered digest
	"PROMPT_PACK_INVALID":      ExitDenied,  // a gate finding: a pack's files break the rules, or a pack outside a prompt_pack package
	"PROMPT_VARIABLES_INVALID": ExitInvalid, // variables that do not validate against the pack's variables schema
	"PROMPT_RENDER_FAILED":     ExitInvalid, // a template that does not render with the variables (one missing)
	"PROMPT_LIMIT":             ExitDenied,  // a provider, model or max_tokens outside the pack's limits
	// Coming from CPv2 (internal/cpv2, cp-install trust add --governed-root, import-cpv2).
	"CPV2_PACKAGE_CHANGED":  ExitDenied, // a CPv2 package file that does not hash to what its manifest declared
	"IMPORT_INCOMPLETE":     ExitDenied, // import-cpv2: some item of the checkout was refused (the report names each)
	"GOVERNED_ROOT_INVALID": ExitDenied, // a governed root that is not one top directory, or is the plane's own
	// cp-route (internal/route) and the blobs it keeps (internal/plane/blob.go).
	"ROUTE_POLICY_INVALID":     ExitInvalid, // a router policy that does not validate, parse or compile, or reads outside the request
	"ROUTE_HANDLER_UNKNOWN":    ExitInvalid, // a route to a handler no installed package provides
	"ROUTE_CAPABILITY_MISSING": ExitInvalid, // a route to a handler that lacks a capability it requires
	"ROUTE_EXPR_TIMEOUT":       ExitInvalid, // an expression that ran past its deadline
	"ROUTE_EXPR_ERROR":         ExitInvalid, // an expression that failed, or answered other than true or false
	"ROUTE_DENIED":             ExitDenied,  // a deny rule of the policy holds for the request (recorded)
	"ROUTE_LIMIT_EXCEEDED":     ExitDenied,  // the session's LLM calls are spent (recorded)
	"ROUTE_REPLAY_DIFFERENT":   ExitDenied,  // a replayed decision gives another answer
	"ROUTE_REPLAY_INVALID":     ExitInvalid, // a replay of something that is not a replayable ROUTE_DECISION
	"CAPABILITIES_INVALID":     ExitInvalid, // an installed capabilities.json that does not validate, changed, or clashes
	"BLOB_MISMATCH":            ExitDenied,  // a blob that does not hash to its name
}

// Kinds a library error may give with a Kind() string method, for a code
// whose class where it was raised is not the code's class in classes. A
// kind says what the error is, in the library's terms; classes and kinds
// together are the only place that turns that into an exit status.
const (
	// KindRefusal: a judgement refused the request. cp-install refuses with
	// the code of the first finding of the first gate that failed
	// (MANIFEST_INVALID, NOT_REGULAR, JOURNAL_PENDING, ...): a negative
	// verdict, exit 1, whatever the finding's code.
	KindRefusal = "refusal"
	// KindArgument: the fault is in a command-line argument (a --trust-key
	// that does not parse is TRUSTED_KEYS_INVALID, but a usage error, 2).
	KindArgument = "argument"
	// KindBroken: stored state breaks an invariant the tools keep (an
	// installed kernel whose version is not MAJOR.MINOR.PATCH): exit 5.
	KindBroken = "broken"
)

var kinds = map[string]int{
	KindRefusal:  ExitDenied,
	KindArgument: ExitUsage,
	KindBroken:   ExitInternal,
}

// ExitFor returns the exit class of an error code.
func ExitFor(code string) int {
	if e, ok := classes[code]; ok {
		return e
	}
	return ExitDenied
}

// exitOf is the exit class of a library error: its kind's, if it gives a
// known one, else its code's.
func exitOf(coded interface{ Code() string }) int {
	if k, ok := coded.(interface{ Kind() string }); ok {
		if e, ok := kinds[k.Kind()]; ok {
			return e
		}
	}
	return ExitFor(coded.Code())
}

// Unevaluated marks err as an error that stopped a judgement before it
// was made (cp-gate's gates could not run). For such an error, exit 1 would
// read as the judgement's negative verdict, which was never reached: a
// refusal met on the way (a registry that does not parse) is then
// "could not evaluate", exit 4, with hint; an error of another class
// keeps it.
func Unevaluated(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &unevaluated{err: err, hint: hint}
}

type unevaluated struct {
	err  error
	hint string
}

func (u *unevaluated) Error() string { return u.err.Error() }
func (u *unevaluated) Unwrap() error { return u.err }

// AsError converts any error into an *Error with a stable code and exit class.
func AsError(err error) *Error {
	e := asError(err)
	var u *unevaluated
	if errors.As(err, &u) && e.Exit == ExitDenied {
		e.Exit, e.Hint = ExitUnavailable, u.hint
	}
	return e
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Exit == 0 && e.passthrough == nil {
			e.Exit = ExitFor(e.Code)
		}
		return e
	}
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		out := &Error{Code: coded.Code(), Message: err.Error(), Exit: exitOf(coded)}
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
