package workorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
)

// NoteHeader is the first line of an approval note's text: what the
// signature is for, so that no other note a work_order key signs can pass
// for an approval.
const NoteHeader = "control-plane/work-order/v1"

// NoteText is the text an approval signs: NoteHeader, the wo_id, the
// payload hash and the expiry, one per line.
func NoteText(id, payloadHash, expiresAt string) string {
	return NoteHeader + "\n" + id + "\n" + payloadHash + "\n" + expiresAt + "\n"
}

// parseNoteText splits an approval's text into its wo_id, payload hash and
// expiry; anything but exactly NoteText's shape is refused.
func parseNoteText(text string) (id, hash, exp string, ok bool) {
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || lines[0] != NoteHeader || lines[4] != "" {
		return "", "", "", false
	}
	return lines[1], lines[2], lines[3], true
}

// Approval is a work order's approval as G2 relies on it.
type Approval struct {
	ID          string     `json:"wo_id"`
	PayloadHash string     `json:"payload_hash"`
	ExpiresAt   string     `json:"expires_at"`
	ApprovedBy  string     `json:"approved_by"`
	KeyName     string     `json:"key_name"`
	KeyHash     string     `json:"key_hash"`
	NoteHash    string     `json:"note_hash"`
	NotePath    string     `json:"note_path"`
	Seq         int64      `json:"seq"` // the WO_APPROVED entry in HO3
	LedgerID    string     `json:"ledger_entry_id"`
	State       string     `json:"state"`
	WorkOrder   *WorkOrder `json:"-"`
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// workOrderKeys returns the verifiers of the keys trusted for work_order
// now, and how many there are.
func workOrderKeys(root string) (note.Verifiers, int, error) {
	ks, err := trust.Load(root)
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for _, k := range ks {
		if slices.Contains(k.Purposes, trust.PurposeWorkOrder) {
			n++
		}
	}
	vs, err := trust.Verifiers(ks, trust.PurposeWorkOrder, "")
	return vs, n, err
}

// open reads a work order and its state under the lock, for a step that
// changes it. strict (approve): the file must read and hash to what
// WO_CREATED recorded. Otherwise (reject, cancel: closing is always
// allowed) a file that does not read is named in fileErr, not refused. An
// expiry that passed is recorded (WO_EXPIRED) and refused.
func open(ctx context.Context, root, id string, opts Options, strict bool) (w *WorkOrder, h string, st *Status, fileErr string, err error) {
	return openIn(ctx, nil, root, id, opts, strict)
}

// openIn is open, reading the state through ch when it is not nil.
func openIn(ctx context.Context, ch *plane.Chain, root, id string, opts Options, strict bool) (w *WorkOrder, h string, st *Status, fileErr string, err error) {
	if err := CheckID(id); err != nil {
		return nil, "", nil, "", err
	}
	if st, err = stateIn(ctx, ch, root, id, opts.now()); err != nil {
		return nil, "", nil, "", err
	}
	w, h, err = readKnown(root, id, st.PayloadHash)
	if err != nil {
		if strict {
			return nil, "", nil, "", err
		}
		fileErr = err.Error()
	}
	if strict && h != st.PayloadHash {
		return nil, "", nil, "", payloadChanged(id, st.PayloadHash, h, "created")
	}
	if st.ExpiryPending {
		if err := recordExpired(ctx, root, st, opts); err != nil {
			return nil, "", nil, "", err
		}
		return nil, "", nil, "", refuse(CodeExpired, map[string]any{"wo_id": id, "expires_at": st.ExpiresAt},
			"work order %s expired at %s (WO_EXPIRED recorded)", id, st.ExpiresAt)
	}
	return w, h, st, fileErr, nil
}

func payloadChanged(id, want, got, when string) *Error {
	return refuse(CodePayloadChanged, map[string]any{"wo_id": id, "recorded_hash": want, "file_hash": got},
		"work order %s changed since it was %s: %s hashes to %s, not %s", id, when, FilePath(id), got, want).
		withHint("a work order never changes: create a new one")
}

func recordExpired(ctx context.Context, root string, st *Status, opts Options) error {
	e, err := recordHO2(ctx, root, opts.Actor, ledger.Draft{EventType: EventExpired, SubmissionID: st.ID, Decision: "EXPIRED",
		Reason:   fmt.Sprintf("expired at %s", st.ExpiresAt),
		Metadata: map[string]any{"wo_id": st.ID, "payload_hash": st.PayloadHash, "expires_at": st.ExpiresAt}})
	if err != nil {
		return err
	}
	return anchorAfter(ctx, root, opts, st.ID, e)
}

// RecordExpired records WO_EXPIRED for work order id if its expiry has
// passed and none is recorded yet (the next cp-wo verb that meets an
// expired work order records it), and returns its state.
func RecordExpired(ctx context.Context, root, id string, opts Options) (*Status, error) {
	unlock, err := lock(ctx, root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := State(ctx, root, id, opts.now())
	if err != nil || !st.ExpiryPending {
		return st, err
	}
	if err := recordExpired(ctx, root, st, opts); err != nil {
		return nil, err
	}
	return State(ctx, root, id, opts.now())
}

func stateRefusal(st *Status, verb, want string) error {
	code := CodeState
	if Closed(st.State) {
		code = CodeClosed
	}
	return refuse(code, map[string]any{"wo_id": st.ID, "state": st.State},
		"work order %s is %s: %s needs it %s", st.ID, st.State, verb, want)
}

// Approve signs and records the approval of work order id by opts.Actor
// with signer: under the lock, the file must hash to what WO_CREATED
// recorded, the state be created and the expiry ahead; the approver is
// never its creator (SELF_APPROVAL); signer must be a key the plane trusts
// for work_order (KEY_UNTRUSTED, also when no key is trusted for it: an
// approval is always signed). The note is written once beside the work
// order (work_orders/<id>.approval, 0444) and WO_APPROVED recorded in HO3
// with the note's hash.
func Approve(ctx context.Context, root, id string, signer note.Signer, opts Options) (*Approval, error) {
	o, err := begin(ctx, root, id, opts, true, "approve", StateCreated, isCreated)
	if err != nil {
		return nil, err
	}
	defer o.unlock()
	w, h, st := o.w, o.hash, o.st
	vs, n, err := workOrderKeys(root)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, refuse(CodeKeyUntrusted, map[string]any{"purpose": trust.PurposeWorkOrder},
			"no key is trusted for work_order on this plane: an approval is always signed").
			withHint("trust the approver's key: cp-install trust add --purpose work_order PUB")
	}
	if signer == nil {
		return nil, refuse(CodeKeyUntrusted, map[string]any{"purpose": trust.PurposeWorkOrder}, "no signing key given: an approval is always signed")
	}
	msg, err := note.Sign(&note.Note{Text: NoteText(id, h, w.ExpiresAt)}, signer)
	if err != nil {
		return nil, err
	}
	if _, err := note.Open(msg, vs); err != nil {
		return nil, refuse(CodeKeyUntrusted, map[string]any{"key_name": signer.Name(), "purpose": trust.PurposeWorkOrder},
			"key %s is not trusted for work_order on this plane", signer.Name()).
			withHint("trust it first (cp-install trust add --purpose work_order PUB), or sign with a trusted key")
	}
	if opts.Actor.Name == w.CreatedBy || opts.Actor.Name == st.created.Actor {
		return nil, refuse(CodeSelfApproval, map[string]any{"wo_id": id, "approver": opts.Actor.Name, "created_by": w.CreatedBy},
			"%s created work order %s and may not approve it", opts.Actor.Name, id).
			withHint("another admin or maintainer approves it")
	}
	rel := NotePath(id)
	path := filepath.Join(root, filepath.FromSlash(rel))
	// A note left by an approve that stopped before WO_APPROVED approves
	// nothing (the state is still created): it gives way to this one.
	if _, err := os.Lstat(path); err == nil {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	if err := plane.CheckRecord(ctx, root, opts.Actor); err != nil {
		return nil, err
	}
	if err := anchorBefore(ctx, root, opts, id); err != nil {
		return nil, err
	}
	if err := atomicfile.Publish(path, msg, 0o444); err != nil {
		return nil, err
	}
	a := &Approval{ID: id, PayloadHash: h, ExpiresAt: w.ExpiresAt, ApprovedBy: opts.Actor.Name, KeyName: signer.Name(),
		KeyHash: fmt.Sprintf("%08x", signer.KeyHash()), NoteHash: sha(msg), NotePath: rel, State: StateApproved, WorkOrder: w}
	e, err := plane.Record(ctx, root, opts.Actor, ledger.Draft{EventType: EventApproved, SubmissionID: id, Decision: "APPROVED",
		Reason: fmt.Sprintf("approved by %s with key %s", a.ApprovedBy, a.KeyName),
		Metadata: map[string]any{"wo_id": id, "payload_hash": h, "expires_at": w.ExpiresAt, "note_hash": a.NoteHash,
			"note_path": rel, "key_name": a.KeyName, "key_hash": a.KeyHash, "approved_by": a.ApprovedBy}})
	if err != nil {
		return nil, err
	}
	a.Seq, a.LedgerID = e.Seq, e.ID
	if err := anchorAfter(ctx, root, opts, id, e); err != nil {
		return nil, err
	}
	return a, nil
}

// Decision is what Reject and Cancel recorded.
type Decision struct {
	ID          string       `json:"wo_id"`
	State       string       `json:"state"`
	PayloadHash string       `json:"payload_hash"`
	Reason      string       `json:"reason,omitempty"`
	Entry       ledger.Entry `json:"-"`
}

// fileMeta adds to m what the file hashes to now, or why it does not read.
func fileMeta(m map[string]any, h, fileErr string) map[string]any {
	if fileErr != "" {
		m["file_error"] = fileErr
	} else {
		m["file_hash"] = h
	}
	return m
}

// Reject records WO_REJECTED in HO3 for work order id, which must be
// created (not yet approved, rejected, cancelled or expired).
func Reject(ctx context.Context, root, id, reason string, opts Options) (*Decision, error) {
	return closeStep(ctx, root, id, reason, opts, "reject", StateCreated, isCreated, StateRejected,
		func(o *opened, reason string) (ledger.Entry, error) {
			return plane.Record(ctx, root, opts.Actor, ledger.Draft{EventType: EventRejected, SubmissionID: id, Decision: "REJECTED",
				Reason: reason, Metadata: fileMeta(map[string]any{"wo_id": id, "payload_hash": o.st.PayloadHash}, o.hash, o.fileErr)})
		})
}

// Cancel records WO_CANCELLED in HO2 for work order id, which must not be
// closed. A file changed since creation, or gone, does not stop a cancel
// (nor a reject): closing is always allowed, and the entry says what the
// file hashed to, or why it did not read.
func Cancel(ctx context.Context, root, id, reason string, opts Options) (*Decision, error) {
	return closeStep(ctx, root, id, reason, opts, "cancel", "open (created, approved or started)", func(s string) bool { return !Closed(s) }, StateCancelled,
		func(o *opened, reason string) (ledger.Entry, error) {
			return recordHO2(ctx, root, opts.Actor, ledger.Draft{EventType: EventCancelled, SubmissionID: id, Decision: "CANCELLED",
				Reason: reason, Metadata: fileMeta(map[string]any{"wo_id": id, "payload_hash": o.st.PayloadHash, "was": o.st.State}, o.hash, o.fileErr)})
		})
}

// opened is a work order as a step that changes it found it under the
// work-order lock (begin): the file (nil, with fileErr, when it did not
// read and the step need not), its hash, its state.
type opened struct {
	w       *WorkOrder
	hash    string
	st      *Status
	fileErr string
	unlock  func()
}

func isCreated(s string) bool { return s == StateCreated }

// begin is the preamble of every step that decides a work order's state
// (approve, reject, cancel): it takes the plane's work-order lock, reads
// the work order and its state (open: strict for approve, whose file
// must hash to WO_CREATED's payload hash; an expiry met is recorded and
// refused), and refuses a state allowed does not accept (WO_STATE, or
// WO_CLOSED for a closed one) saying the verb needs want. On success the
// caller holds the lock and releases it with o.unlock.
func begin(ctx context.Context, root, id string, opts Options, strict bool, verb, want string, allowed func(string) bool) (*opened, error) {
	unlock, err := lock(ctx, root)
	if err != nil {
		return nil, err
	}
	w, h, st, fileErr, err := open(ctx, root, id, opts, strict)
	if err == nil && !allowed(st.State) {
		err = stateRefusal(st, verb, want)
	}
	if err != nil {
		unlock()
		return nil, err
	}
	return &opened{w: w, hash: h, st: st, fileErr: fileErr, unlock: unlock}, nil
}

// closeStep is Reject and Cancel: begin (closing is always allowed, so a
// file that does not read does not stop it), the lower tiers anchored,
// the entry record writes (reason "" is the verb's past tense, state),
// the lower tiers anchored again.
func closeStep(ctx context.Context, root, id, reason string, opts Options, verb, want string, allowed func(string) bool, state string,
	record func(o *opened, reason string) (ledger.Entry, error)) (*Decision, error) {
	o, err := begin(ctx, root, id, opts, false, verb, want, allowed)
	if err != nil {
		return nil, err
	}
	defer o.unlock()
	if reason == "" {
		reason = state
	}
	if err := anchorBefore(ctx, root, opts, id); err != nil {
		return nil, err
	}
	e, err := record(o, reason)
	if err != nil {
		return nil, err
	}
	if err := anchorAfter(ctx, root, opts, id, e); err != nil {
		return nil, err
	}
	return &Decision{ID: id, State: state, PayloadHash: o.st.PayloadHash, Reason: reason, Entry: e}, nil
}

// Approved is G2's question: may work be done under work order id now? It
// answers the approval only when every check holds, and fails closed
// otherwise:
//
//   - the file reads (no link: NOT_REGULAR) and is valid, and WO_CREATED
//     is in HO2 (WO_NOT_FOUND);
//   - the state is approved or started (WO_NOT_APPROVED for created or
//     rejected; WO_CLOSED for cancelled or completed; WO_EXPIRED when the
//     expiry passed, recorded or not);
//   - the file's payload hash is the one WO_APPROVED recorded, and the one
//     WO_CREATED recorded (WO_PAYLOAD_CHANGED, naming both hashes);
//   - the note beside it hashes to WO_APPROVED's note_hash, its signature
//     verifies by a key trusted for work_order now (a key since untrusted:
//     KEY_UNTRUSTED), and its text is NoteText of this work order's id,
//     payload hash and expiry (APPROVAL_INVALID otherwise).
//
// It writes nothing. A completed work order is WO_CLOSED here: the no-op
// replay G2 allows after completion is decided by its caller.
func Approved(ctx context.Context, root, id string) (*Approval, error) {
	return approvedAt(ctx, root, id, time.Now().UTC())
}

// ApprovedState is Approved at time now, and the state it was judged on
// (the work order's sessions among it): one read of the ledgers for a
// caller that needs both, as the LLM gateway does for a call in a session
// (a read that grows with the work order's entries in HO2, its LLM calls
// included).
func ApprovedState(ctx context.Context, root, id string, now time.Time) (*Approval, *Status, error) {
	return approvedState(ctx, root, id, now)
}

func approvedAt(ctx context.Context, root, id string, now time.Time) (*Approval, error) {
	a, _, err := approvedState(ctx, root, id, now)
	return a, err
}

func approvedState(ctx context.Context, root, id string, now time.Time) (*Approval, *Status, error) {
	w, h, err := Read(root, id)
	if err != nil {
		return nil, nil, err
	}
	st, err := State(ctx, root, id, now)
	if err != nil {
		return nil, nil, err
	}
	a, err := approvedWith(root, id, w, h, st, now)
	if err != nil {
		return nil, nil, err
	}
	return a, st, nil
}

// approvedWith is approvedAt over the file (w, its hash h) and the state
// st its caller has just read, under the work-order lock.
func approvedWith(root, id string, w *WorkOrder, h string, st *Status, now time.Time) (*Approval, error) {
	switch st.State {
	case StateApproved, StateStarted:
	case StateExpired:
		return nil, refuse(CodeExpired, map[string]any{"wo_id": id, "expires_at": st.ExpiresAt}, "work order %s expired at %s", id, st.ExpiresAt)
	case StateCreated, StateRejected:
		return nil, refuse(CodeNotApproved, map[string]any{"wo_id": id, "state": st.State}, "work order %s is %s, not approved", id, st.State).
			withHint("approve it: cp-wo approve %s --key KEY (by someone other than its creator)", id)
	default:
		return nil, refuse(CodeClosed, map[string]any{"wo_id": id, "state": st.State}, "work order %s is %s: nothing more is done under it", id, st.State)
	}
	ae := st.approved
	if ae == nil {
		return nil, refuse(CodeNotApproved, map[string]any{"wo_id": id, "state": st.State}, "work order %s has no WO_APPROVED in HO3", id)
	}
	approvedHash, _ := ae.Metadata["payload_hash"].(string)
	if h != approvedHash {
		return nil, payloadChanged(id, approvedHash, h, "approved")
	}
	if h != st.PayloadHash {
		return nil, payloadChanged(id, st.PayloadHash, h, "created")
	}
	bad := func(format string, args ...any) error {
		return refuse(CodeApprovalBad, map[string]any{"wo_id": id, "note_path": NotePath(id), "seq": ae.Seq}, "work order %s: approval %s", id, fmt.Sprintf(format, args...))
	}
	msg, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(NotePath(id))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, bad("note %s is missing", NotePath(id))
	}
	if err != nil {
		return nil, err
	}
	noteHash, _ := ae.Metadata["note_hash"].(string)
	if sha(msg) != noteHash {
		return nil, bad("note %s hashes to %s, not %s as WO_APPROVED (HO3 seq %d) recorded", NotePath(id), sha(msg), noteHash, ae.Seq)
	}
	vs, _, err := workOrderKeys(root)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(msg, vs)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return nil, refuse(CodeKeyUntrusted, map[string]any{"wo_id": id, "purpose": trust.PurposeWorkOrder},
				"work order %s: its approval is not signed by a key trusted for work_order now", id)
		}
		return nil, bad("signature: %v", err)
	}
	nid, nhash, nexp, ok := parseNoteText(n.Text)
	switch {
	case !ok:
		return nil, bad("note does not have the form of %s", NoteHeader)
	case nid != id:
		return nil, bad("note is for work order %s", nid)
	case nhash != h:
		return nil, payloadChanged(id, nhash, h, "approved")
	case nexp != w.ExpiresAt:
		return nil, bad("note's expiry %s is not the work order's %s", nexp, w.ExpiresAt)
	}
	exp, _ := time.Parse(time.RFC3339, nexp)
	if !now.Before(exp) {
		return nil, refuse(CodeExpired, map[string]any{"wo_id": id, "expires_at": nexp}, "work order %s expired at %s", id, nexp)
	}
	kn, _ := ae.Metadata["key_name"].(string)
	kh, _ := ae.Metadata["key_hash"].(string)
	return &Approval{ID: id, PayloadHash: h, ExpiresAt: nexp, ApprovedBy: ae.Actor, KeyName: kn, KeyHash: kh,
		NoteHash: noteHash, NotePath: NotePath(id), Seq: ae.Seq, LedgerID: ae.ID, State: st.State, WorkOrder: w}, nil
}
