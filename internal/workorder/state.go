package workorder

import (
	"cmp"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Event types of the work-order family (pkg/ledger's catalogue).
const (
	EventCreated   = "WO_CREATED"   // HO2
	EventApproved  = "WO_APPROVED"  // HO3
	EventRejected  = "WO_REJECTED"  // HO3
	EventStarted   = "WO_STARTED"   // HO2
	EventCompleted = "WO_COMPLETED" // HO2
	EventCancelled = "WO_CANCELLED" // HO2
	EventExpired   = "WO_EXPIRED"   // HO2
)

// States of a work order (DESIGN.md §13): created → approved | rejected;
// approved → started → completed; created, approved or started →
// cancelled | expired.
const (
	StateCreated   = "created"
	StateApproved  = "approved"
	StateRejected  = "rejected"
	StateStarted   = "started"
	StateCompleted = "completed"
	StateCancelled = "cancelled"
	StateExpired   = "expired"
)

// Closed reports whether nothing more can happen under a work order in
// state s.
func Closed(s string) bool {
	switch s {
	case StateRejected, StateCompleted, StateCancelled, StateExpired:
		return true
	}
	return false
}

var (
	ho2Events = []string{EventCreated, EventStarted, EventCompleted, EventCancelled, EventExpired}
	ho3Events = []string{EventApproved, EventRejected}
)

// Event is one ledger entry of a work order's history.
type Event struct {
	Tier      string `json:"tier"` // ho3 or ho2
	Seq       int64  `json:"seq"`
	EventType string `json:"event_type"`
	Actor     string `json:"actor"`
	Timestamp string `json:"timestamp"`
	EntryID   string `json:"ledger_entry_id"`
}

// Status is a work order's state as its ledger entries make it, and
// nothing else.
type Status struct {
	ID    string `json:"wo_id"`
	State string `json:"state"`
	// PayloadHash is the hash WO_CREATED recorded.
	PayloadHash string `json:"payload_hash"`
	CreatedBy   string `json:"created_by"`
	Type        string `json:"type,omitempty"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	ApprovedBy  string `json:"approved_by,omitempty"`
	ApprovalKey string `json:"approval_key,omitempty"`
	// ExpiryPending: expires_at has passed but no WO_EXPIRED is recorded
	// yet (State is already expired); the next cp-wo verb records it.
	ExpiryPending bool `json:"expiry_pending,omitempty"`
	// Sessions are the sessions its WO_STARTED entries opened, in order
	// (their turn counts are filled by Sessions).
	Sessions []Session `json:"sessions,omitempty"`
	Events   []Event   `json:"events"`

	created   *ledger.Entry
	approved  *ledger.Entry
	completed *ledger.Entry
}

// Session is an HO1 session a WO_STARTED entry opened.
type Session struct {
	ID string `json:"session_id"`
	// Ledger is the session ledger's path, relative to the plane root.
	Ledger string `json:"ledger"`
	// Seq is the WO_STARTED entry's in HO2; GenesisHash the hash of the
	// session ledger's GENESIS it recorded.
	Seq         int64  `json:"seq"`
	GenesisHash string `json:"genesis_hash"`
	// Turns is how many TURN entries its ledger holds (-1: not counted).
	Turns int64 `json:"turns"`
}

// ho2Dir is HO2's tier directory below root.
func ho2Dir(root string) string { return filepath.Join(root, filepath.FromSlash(plane.Layout[1].Dir)) }

// find returns the entries of events in the ledger of the tier at dir
// (or in l, when not nil: that ledger already open) whose submission_id is
// id, in seq order.
func find(ctx context.Context, l ledger.Store, dir, id string, events []string) ([]ledger.Entry, error) {
	if l == nil {
		var err error
		if l, _, err = plane.OpenLedger(dir, plane.ForReading, plane.Actor{}); err != nil {
			return nil, err
		}
		defer l.Close()
	}
	var out []ledger.Entry
	err := l.Find(ctx, ledger.Query{EventTypes: events, Subject: id}, func(e *ledger.Entry) bool {
		out = append(out, *e)
		return true
	})
	return out, err
}

// State derives the state of work order id from the HO2 and HO3 ledgers of
// the plane at root, at time now. No WO_CREATED is WO_NOT_FOUND. The first
// entry of each type counts; a closing entry (cancelled, expired,
// completed, rejected) wins over any other, then started, approved,
// created; a work order past its expires_at that is not closed is
// expired (ExpiryPending until WO_EXPIRED is recorded).
func State(ctx context.Context, root, id string, now time.Time) (*Status, error) {
	return stateIn(ctx, nil, root, id, now)
}

// stateIn is State, reading HO2's and HO3's ledgers through ch when it is
// not nil (a step's chain, already open).
func stateIn(ctx context.Context, ch *plane.Chain, root, id string, now time.Time) (*Status, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	var l2, l3 ledger.Store
	if ch != nil {
		l2, l3 = ch.HO2(), ch.HO3()
	}
	ho2, err := find(ctx, l2, ho2Dir(root), id, ho2Events)
	if err != nil {
		return nil, err
	}
	ho3, err := find(ctx, l3, root, id, ho3Events)
	if err != nil {
		return nil, err
	}
	first := map[string]*ledger.Entry{}
	st := &Status{ID: id}
	for _, es := range [][]ledger.Entry{ho2, ho3} {
		for i := range es {
			if first[es[i].EventType] == nil {
				first[es[i].EventType] = &es[i]
			}
		}
	}
	for _, e := range ho3 {
		st.Events = append(st.Events, Event{Tier: "ho3", Seq: e.Seq, EventType: e.EventType, Actor: e.Actor, Timestamp: e.Timestamp, EntryID: e.ID})
	}
	for _, e := range ho2 {
		if e.EventType == EventStarted {
			sid, _ := e.Metadata["session_id"].(string)
			lp, _ := e.Metadata["ledger"].(string)
			gh, _ := e.Metadata["genesis_hash"].(string)
			st.Sessions = append(st.Sessions, Session{ID: sid, Ledger: lp, Seq: e.Seq, GenesisHash: gh, Turns: -1})
		}
		st.Events = append(st.Events, Event{Tier: "ho2", Seq: e.Seq, EventType: e.EventType, Actor: e.Actor, Timestamp: e.Timestamp, EntryID: e.ID})
	}
	sortEvents(st.Events)
	c := first[EventCreated]
	if c == nil {
		return nil, refuse(CodeNotFound, map[string]any{"wo_id": id}, "work order %s not found: no WO_CREATED in HO2's ledger", id)
	}
	st.created = c
	st.PayloadHash, _ = c.Metadata["payload_hash"].(string)
	st.CreatedBy, _ = c.Metadata["created_by"].(string)
	st.Type, _ = c.Metadata["type"].(string)
	st.ExpiresAt, _ = c.Metadata["expires_at"].(string)
	if a := first[EventApproved]; a != nil {
		st.approved = a
		st.ApprovedBy = a.Actor
		st.ApprovalKey, _ = a.Metadata["key_name"].(string)
	}
	st.completed = first[EventCompleted]
	switch {
	case first[EventCancelled] != nil:
		st.State = StateCancelled
	case first[EventExpired] != nil:
		st.State = StateExpired
	case first[EventCompleted] != nil:
		st.State = StateCompleted
	case first[EventRejected] != nil:
		st.State = StateRejected
	case first[EventStarted] != nil:
		st.State = StateStarted
	case first[EventApproved] != nil:
		st.State = StateApproved
	default:
		st.State = StateCreated
	}
	if !Closed(st.State) {
		exp, err := time.Parse(time.RFC3339, st.ExpiresAt)
		if err != nil || !now.Before(exp) {
			// A WO_CREATED without a readable expiry expires at once:
			// fail closed.
			st.State, st.ExpiryPending = StateExpired, true
		}
	}
	return st, nil
}

// sortEvents orders events by time, HO3 before HO2 at the same instant.
func sortEvents(es []Event) {
	slices.SortStableFunc(es, func(a, b Event) int {
		return cmp.Or(strings.Compare(a.Timestamp, b.Timestamp), strings.Compare(b.Tier, a.Tier))
	})
}
