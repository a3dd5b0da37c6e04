package plane

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/control-plane/cp/pkg/ledger"
)

// SessionLedger is where HO1 session id's ledger lives, relative to the
// HO1 tier directory (DESIGN.md §4, §13). Check the id (ValidSessionID)
// before a path is built from it.
func SessionLedger(id string) string {
	return filepath.Join("sessions", id, "ledger", "session.jsonl")
}

// SessionsDir is the directory that holds the HO1 sessions of the plane
// whose HO3 root is root (one directory per session id).
func SessionsDir(root string) string {
	dir, _ := Dir(root, "ho1")
	return filepath.Join(dir, "sessions")
}

// SessionLedgerPath is the path of session id's ledger in the plane whose
// HO3 root is root.
func SessionLedgerPath(root, id string) string {
	dir, _ := Dir(root, "ho1")
	return filepath.Join(dir, SessionLedger(id))
}

// OpenSessionLedger opens HO1 session id's ledger in the plane at root,
// through OpenTierLedger (no link on the way, the plane's checkpoint
// key): the one way cp-ledger --session and cp-wo open a session's
// ledger.
func OpenSessionLedger(root, id string, a Access, actor Actor) (ledger.Store, Tier, error) {
	if !ValidSessionID(id) {
		return nil, Tier{}, refuse("INVALID_INPUT", "%q is not a session id (SES-YYYYMMDD-<8 hex digits>)", id)
	}
	dir, _ := Dir(root, "ho1")
	t, err := ReadTier(dir)
	if err != nil {
		return nil, t, err
	}
	s, err := OpenTierLedger(dir, t, filepath.Join(dir, SessionLedger(id)), a, actor)
	return s, t, err
}

// SessionGenesis is the GENESIS that starts session id's ledger in the
// plane at root: it records the head (hash and size) of HO2's ledger as
// it is now, so that the session hangs off the plane's history (G6 checks
// the link). cp-ledger --session and cp-wo start both start a session
// with it.
func SessionGenesis(ctx context.Context, root, id string) (ledger.Draft, error) {
	dir, _ := Dir(root, "ho2")
	l, tier, err := OpenLedger(dir, ForReading, Actor{})
	if err != nil {
		return ledger.Draft{}, err
	}
	defer l.Close()
	st, err := l.State(ctx)
	if err != nil {
		return ledger.Draft{}, err
	}
	rel, err := filepath.Rel(root, LedgerPath(dir, tier))
	if err != nil {
		return ledger.Draft{}, fmt.Errorf("plane: HO2 ledger path: %w", err)
	}
	return ledger.Draft{EventType: "GENESIS", SubmissionID: id, Decision: "CREATED", Reason: "session ledger",
		Metadata: map[string]any{"_tier": "HO1", "_session_id": id, "parent_ledger": filepath.ToSlash(rel),
			"parent_hash": st.Head, "parent_size": json.Number(strconv.FormatInt(st.Size, 10))}}, nil
}
