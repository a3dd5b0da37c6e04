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
)

// Error is a ledger failure that callers act on: Code is stable (for example
// LOCK_TIMEOUT, LEDGER_INVALID, LEDGER_NOT_EMPTY, INVALID_INPUT) and its
// exit class in the shared exit-code table is ExitCode.
type Error struct {
	code string
	exit int
	msg  string
}

func (e *Error) Error() string { return e.msg }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// ExitCode returns the exit class of the error.
func (e *Error) ExitCode() int { return e.exit }

func errorf(code string, exit int, format string, args ...any) *Error {
	return &Error{code: code, exit: exit, msg: fmt.Sprintf(format, args...)}
}

// Exit classes, mirroring internal/cli (the library does not import it).
const (
	exitDenied      = 1
	exitUsage       = 2 // a bad argument: a seq or size outside the ledger
	exitInvalid     = 3
	exitUnavailable = 4
	exitInternal    = 5
)
