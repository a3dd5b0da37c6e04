package workorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// EventTurn and EventTurnRefused are the session ledger's work-order
// entries: a turn recorded, and a turn header refused at record time
// (its code and reason, the header's hash), so that an agent's attempt to
// declare what it did not read stays in its own history.
const (
	EventTurn        = "TURN"
	EventTurnRefused = "TURN_REFUSED"
)

// Started is what Start made: the session, its ledger and WO_STARTED.
type Started struct {
	ID          string       `json:"wo_id"`
	SessionID   string       `json:"session_id"`
	Ledger      string       `json:"ledger"` // relative to the plane root
	GenesisSeq  int64        `json:"genesis_seq"`
	GenesisHash string       `json:"genesis_hash"`
	PayloadHash string       `json:"payload_hash"`
	WorkOrder   *WorkOrder   `json:"-"`
	Entry       ledger.Entry `json:"-"` // WO_STARTED in HO2
}

// newSessionID returns a fresh session id for the day of o.now():
// SES-YYYYMMDD-<8 hex digits from crypto/rand>.
func (o Options) newSessionID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "SES-" + o.now().Format("20060102") + "-" + hex.EncodeToString(b[:]), nil
}

// Start opens a session under work order id: under the plane's work-order
// lock, the work order must pass Approved (approved or already started,
// its file unchanged, its note valid under the keys trusted now, not
// expired: an expiry met is recorded, WO_EXPIRED); it makes a fresh
// session id, starts the session's ledger
// (planes/ho1/sessions/<SES>/ledger/session.jsonl) with the GENESIS that
// records HO2's head (plane.SessionGenesis, as cp-ledger --session does),
// then records WO_STARTED in HO2 naming the session, its ledger and its
// GENESIS hash. A crash between the two leaves a session ledger no
// WO_STARTED names: no turn is ever recorded in it (SESSION_MISMATCH),
// and the work order is as it was.
func Start(ctx context.Context, root, id string, opts Options) (*Started, error) {
	unlock, err := lock(ctx, root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	w, h, st, _, err := open(ctx, root, id, opts, true)
	if err != nil {
		return nil, err
	}
	a, err := approvedWith(root, id, w, h, st, opts.now())
	if err != nil {
		return nil, err
	}
	if err := checkHO2(ctx, root, opts.Actor); err != nil {
		return nil, err
	}
	if err := anchorBefore(ctx, root, opts, id); err != nil {
		return nil, err
	}
	var sid string
	for range 8 {
		if sid, err = opts.newSessionID(); err != nil {
			return nil, err
		}
		_, err = os.Lstat(filepath.Dir(filepath.Dir(plane.SessionLedgerPath(root, sid))))
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		sid = "" // taken: draw again
	}
	if sid == "" {
		return nil, fmt.Errorf("workorder: no free session id after 8 draws")
	}
	g, err := plane.SessionGenesis(ctx, root, sid)
	if err != nil {
		return nil, err
	}
	g.Metadata["_work_order_id"] = id
	l, _, err := plane.OpenSessionLedger(root, sid, plane.ForAppend, opts.Actor)
	if err != nil {
		return nil, err
	}
	ges, err := l.Append(ctx, []ledger.Draft{g})
	l.Close()
	if err != nil {
		return nil, err
	}
	ge := ges[0]
	rel, err := filepath.Rel(root, plane.SessionLedgerPath(root, sid))
	if err != nil {
		return nil, err
	}
	rel = filepath.ToSlash(rel)
	e, err := recordHO2(ctx, root, opts.Actor, ledger.Draft{EventType: EventStarted, SubmissionID: id, Decision: "STARTED",
		Reason: fmt.Sprintf("session %s opened", sid),
		Metadata: map[string]any{"wo_id": id, "payload_hash": a.PayloadHash, "session_id": sid, "ledger": rel,
			"genesis_hash": ge.EntryHash, "genesis_seq": ge.Seq}})
	if err != nil {
		return nil, err
	}
	// The new session's GENESIS is anchored in HO2 and HO2 in HO3.
	if err := anchorAfter(ctx, root, opts, id, e, sid); err != nil {
		return nil, err
	}
	return &Started{ID: id, SessionID: sid, Ledger: rel, GenesisSeq: ge.Seq, GenesisHash: ge.EntryHash, PayloadHash: a.PayloadHash,
		WorkOrder: a.WorkOrder, Entry: e}, nil
}

// Completed is what Complete recorded, or found recorded (NoOp).
type Completed struct {
	ID          string       `json:"wo_id"`
	State       string       `json:"state"`
	PayloadHash string       `json:"payload_hash"`
	ResultHash  string       `json:"result_sha256,omitempty"`
	NoOp        bool         `json:"noop"`
	Sessions    int          `json:"sessions"`
	Turns       int64        `json:"turns"`
	Seq         int64        `json:"seq"`
	Entry       ledger.Entry `json:"-"`
}

// Complete records WO_COMPLETED in HO2 for work order id, with the result
// hash (sha256:<hex>, or ""). It is idempotent on (wo_id, payload_hash):
// under the plane's work-order lock, held across the check and the append
// (every writer of a WO_* entry holds it, so two completes never both
// append), a work order already completed whose file still hashes to the
// completed payload hash, asked again with the same result hash or none,
// is a no-op (NoOp, nothing written); another payload hash is
// WO_PAYLOAD_CHANGED, another result hash WO_CLOSED. Otherwise the work
// order must be started (WO_STATE: start it first) and pass Approved.
func Complete(ctx context.Context, root, id, resultHash string, opts Options) (*Completed, error) {
	unlock, err := lock(ctx, root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := CheckID(id); err != nil {
		return nil, err
	}
	st, err := State(ctx, root, id, opts.now())
	if err != nil {
		return nil, err
	}
	if st.State == StateCompleted && st.completed != nil {
		// A no-op writes nothing, but HO2's ledger is brought in step
		// first (an empty append finishes a write a killed step left
		// torn), so that complete, asked again after a crash, leaves HO2
		// verifying.
		if err := checkHO2(ctx, root, opts.Actor); err != nil {
			return nil, err
		}
		return completedAgain(ctx, root, st, resultHash)
	}
	w, h, st, _, err := open(ctx, root, id, opts, true)
	if err != nil {
		return nil, err
	}
	if st.State != StateStarted {
		return nil, stateRefusal(st, "complete", StateStarted+" (cp-wo start opens a session)")
	}
	a, err := approvedWith(root, id, w, h, st, opts.now())
	if err != nil {
		return nil, err
	}
	sessions := make([]string, len(st.Sessions))
	for i, s := range st.Sessions {
		sessions[i] = s.ID
	}
	// Every session's last turns (and any append to it outside a step) are
	// anchored before the work order closes: a cut session stops it here.
	if err := anchorBefore(ctx, root, opts, id, sessions...); err != nil {
		return nil, err
	}
	turns, err := countTurns(ctx, root, st.Sessions)
	if err != nil {
		return nil, err
	}
	m := map[string]any{"wo_id": id, "payload_hash": a.PayloadHash, "sessions": len(st.Sessions), "turns": turns}
	if resultHash != "" {
		m["result_sha256"] = resultHash
	}
	e, err := recordHO2(ctx, root, opts.Actor, ledger.Draft{EventType: EventCompleted, SubmissionID: id, Decision: "COMPLETED",
		Reason: fmt.Sprintf("completed after %d turns in %d sessions", turns, len(st.Sessions)), Metadata: m})
	if err != nil {
		return nil, err
	}
	if err := anchorAfter(ctx, root, opts, id, e); err != nil {
		return nil, err
	}
	return &Completed{ID: id, State: StateCompleted, PayloadHash: a.PayloadHash, ResultHash: resultHash,
		Sessions: len(st.Sessions), Turns: turns, Seq: e.Seq, Entry: e}, nil
}

// completedAgain answers a complete of a work order already completed.
func completedAgain(ctx context.Context, root string, st *Status, resultHash string) (*Completed, error) {
	id := st.ID
	ce := st.completed
	ph, _ := ce.Metadata["payload_hash"].(string)
	rh, _ := ce.Metadata["result_sha256"].(string)
	_, h, err := Read(root, id)
	if err != nil {
		return nil, err
	}
	if h != ph {
		return nil, payloadChanged(id, ph, h, "completed")
	}
	if resultHash != "" && resultHash != rh {
		got := rh
		if got == "" {
			got = "no result hash"
		}
		return nil, refuse(CodeClosed, map[string]any{"wo_id": id, "result_sha256": rh, "asked": resultHash, "seq": ce.Seq},
			"work order %s was completed with %s (HO2 seq %d), not %s: a work order completes once", id, got, ce.Seq, resultHash)
	}
	turns, _ := countTurns(ctx, root, st.Sessions)
	return &Completed{ID: id, State: StateCompleted, PayloadHash: ph, ResultHash: rh, NoOp: true,
		Sessions: len(st.Sessions), Turns: turns, Seq: ce.Seq, Entry: *ce}, nil
}

// countTurns fills each session's Turns from its ledger and returns the
// sum.
func countTurns(ctx context.Context, root string, ss []Session) (int64, error) {
	var total int64
	for i := range ss {
		n, _, err := sessionTurns(ctx, root, ss[i].ID)
		if err != nil {
			return 0, err
		}
		ss[i].Turns = n
		total += n
	}
	return total, nil
}

// sessionTurns returns how many TURN entries session sid's ledger holds
// and the last one's turn_number.
func sessionTurns(ctx context.Context, root, sid string) (n, last int64, err error) {
	if !plane.ValidSessionID(sid) {
		return 0, 0, refuse(CodeSessionMismatch, map[string]any{"session_id": sid}, "%q is not a session id", sid)
	}
	if _, err := os.Lstat(plane.SessionLedgerPath(root, sid)); errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	l, _, err := plane.OpenSessionLedger(root, sid, plane.ForReading, plane.Actor{})
	if err != nil {
		return 0, 0, err
	}
	defer l.Close()
	last, err = lastTurn(ctx, l)
	return last, last, err
}

// Sessions fills the turn counts of st's sessions (cp-wo status).
func Sessions(ctx context.Context, root string, st *Status) (int64, error) {
	return countTurns(ctx, root, st.Sessions)
}
