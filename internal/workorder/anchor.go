package workorder

import (
	"context"
	"errors"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// anchorBefore anchors the lower tiers' ledgers (plane.AnchorChain) before
// a step of work order id acts, under the work-order lock: a lower-tier
// ledger that contradicts one of its anchors (LEDGER_TRUNCATED,
// ANCHOR_MISMATCH) stops the step before it writes anything, and what the
// lower tiers wrote since the last step (cp-ledger append --plane ho2,
// --session) is anchored first. Anchoring what did not grow writes
// nothing. With sessions, each session's ledger is anchored in HO2's
// first (plane.AnchorChain per session).
func anchorBefore(ctx context.Context, root string, opts Options, id string, sessions ...string) error {
	return anchorChains(ctx, root, opts, id, sessions)
}

// anchorChains runs plane.AnchorChain for each session, or once for HO2
// alone when there is none.
func anchorChains(ctx context.Context, root string, opts Options, id string, sessions []string) error {
	if len(sessions) == 0 {
		sessions = []string{""}
	}
	for _, sid := range sessions {
		if _, err := plane.AnchorChain(ctx, root, opts.Actor, id, sid); err != nil {
			return err
		}
	}
	return nil
}

// anchorAfter anchors the lower tiers' ledgers after a step recorded e (in
// HO2 or HO3), so that every step leaves HO2's latest checkpoint anchored
// in HO3 (DESIGN.md §13). The step is done whatever happens here: a
// failure is reported with the anchor's code, saying that the step's
// entry was recorded, and the next step's anchor continues from it.
func anchorAfter(ctx context.Context, root string, opts Options, id string, e ledger.Entry, sessions ...string) error {
	return afterStep(anchorChains(ctx, root, opts, id, sessions), id, e)
}

// afterStep reports err, the failure of the anchors after a step of work
// order id recorded e, as anchorAfter does (nil: none).
func afterStep(err error, id string, e ledger.Entry) error {
	if err == nil {
		return nil
	}
	code := "IO_ERROR"
	var coded interface{ Code() string }
	if errors.As(err, &coded) {
		code = coded.Code()
	}
	return refuse(code, map[string]any{"wo_id": id, "event_type": e.EventType, "seq": e.Seq, "ledger_entry_id": e.ID},
		"%s of %s was recorded (seq %d), but anchoring the lower tiers' ledgers failed: %v", e.EventType, id, e.Seq, err).
		withHint("run cp-gate check --gate G6; the next work-order step anchors again")
}
