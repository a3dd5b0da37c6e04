package ledger

import "fmt"

// Issue codes reported by Verify (DESIGN.md §5). They are stable: scripts
// match on them.
const (
	HashMismatch           = "HASH_MISMATCH"           // entry_hash is not the leaf hash of the entry
	ChainBroken            = "CHAIN_BROKEN"            // previous_hash is not the prior entry's entry_hash
	SeqGap                 = "SEQ_GAP"                 // seq is not the entry's position
	Malformed              = "MALFORMED"               // not canonical JSON, or a field missing or of the wrong type
	TornTail               = "TORN_TAIL"               // a partial last line or stored hashes out of step: an append did not finish
	MerkleMismatch         = "MERKLE_MISMATCH"         // a stored hash in X.tlog differs from the recomputed tree
	TlogMissing            = "TLOG_MISSING"            // X.tlog is absent or covers fewer entries than the ledger
	CheckpointInvalid      = "CHECKPOINT_INVALID"      // unparsable checkpoint, or a signature that does not verify
	CheckpointInconsistent = "CHECKPOINT_INCONSISTENT" // a checkpoint's root is not this ledger's root at that size
	IndexMismatch          = "INDEX_MISMATCH"          // X.idx, fit to use, differs from its rebuild from the ledger: it may hide entries from Find
)

// Error is a ledger failure that callers act on: Code is stable (for example
// LOCK_TIMEOUT, LEDGER_INVALID, LEDGER_NOT_EMPTY, INVALID_INPUT) and names
// the condition; what a caller does about it (a process's exit status) is
// the caller's.
type Error struct {
	code  string
	msg   string
	cause error // what it wraps, if anything (a context's error)
}

func (e *Error) Error() string { return e.msg }

// Unwrap returns the error e wraps, or nil.
func (e *Error) Unwrap() error { return e.cause }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

func errorf(code, format string, args ...any) *Error {
	return &Error{code: code, msg: fmt.Sprintf(format, args...)}
}
