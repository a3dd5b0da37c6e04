package llm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// A work order's budget (and its sessions' limits) are summed over its
// LLM_RESERVED and LLM_CALL entries, found through the index by its id.
// Reading them all on every call grew with the work order's history: 77
// ms at 5,000 entries, 292 ms at 20,000, under the budget lock. So each
// work order's sums are carried in a tally of its own, the work-order
// tally, beside the budget ledger in ledger/llm-wo.<WO-ID>.json: its
// settled spend, its sessions' settled spend, and its reservations not yet
// settled, as of the ledger's first Size entries. A call folds in only the
// work order's entries appended since, from a read of every line since
// Size checked against the ledger's tree (ledger.FindChecked: no index
// lookup, which a one-call edit could make miss an entry, and the seal
// then keep the lie); a tally begun from nothing reads from the work
// order's WO_CREATED. The cost is the plane's entries since the work
// order's last call, not its history.
//
// One file per work order, not one for the plane: the caps' tally
// (tally.go) is read and rewritten by every capped call, and carrying
// every work order in it made each call pay for all the plane's work
// orders (32 ms a call at 1,000 of them; session 32). A call reads and
// rewrites its own work order's file only.
//
// It is believed as the caps' tally is, and never otherwise:
//   - its MAC (HMAC-SHA-256 under a key derived from the plane's checkpoint
//     key for this purpose alone, plane.MACKey) is over bytes that name the
//     work order: another work order's tally, or the caps' tally, copied
//     over it is not believed;
//   - the ledger's first Size entries still hash to its Root;
//   - it parses, is of this version, and names this work order.
//
// An older tally of the same work order restored over a newer one is
// believed and caught up from its own Size: the same sums. Anything else
// is recomputed from the work order's entries and rewritten. A plane
// without a checkpoint key keeps no work-order tallies: its calls sum the
// work order's entries every time.

// woTallyVersion is the work-order tally's format; another is recomputed.
// Version 1 was caught up through the index (Find), which a one-call
// edit of the plane's files could make miss entries: its sums are not
// believed.
const woTallyVersion = 2

// woTallyPrefix starts the name of a work-order tally file in HO2's
// ledger directory; gate.G6 allows regular files named so there.
const woTallyPrefix = "llm-wo."

// woTallyFile is work order wo's tally beside the budget ledger in dir.
func woTallyFile(dir, wo string) string {
	return filepath.Join(dir, "ledger", woTallyPrefix+wo+".json")
}

// woTallyID is the work order whose tally a file of HO2's ledger
// directory named name is, if it is one.
func woTallyID(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, woTallyPrefix)
	if !ok {
		return "", false
	}
	id, ok = strings.CutSuffix(id, ".json")
	return id, ok && workorder.ValidID(id)
}

// woTallyKey is the key of the work-order tallies' MAC: nil when the plane
// has no checkpoint key.
func woTallyKey(t plane.Tier) ([]byte, error) { return plane.MACKey(t, "llm-wo-tally") }

// woTallyKeyOf is woTallyKey (a test's seam: a key without a plane).
var woTallyKeyOf = woTallyKey

// woTallyMAC is a work-order tally file's MAC of the tally's bytes b.
func woTallyMAC(key, b []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("control-plane llm-wo-tally v1\n"))
	m.Write(b)
	return m.Sum(nil)
}

// woTally is the spend of one work order's entries among the budget
// ledger's first Size entries.
type woTally struct {
	Version   int    `json:"version"`
	WorkOrder string `json:"work_order_id"`
	Size      int64  `json:"size"`
	Root      string `json:"root"`
	// Settled is what its LLM_CALLs charged; Sessions the same by session
	// (the reservation's session, or the call's own when its reservation
	// is not open).
	Settled  Spend            `json:"settled"`
	Sessions map[string]Spend `json:"sessions"`
	// Pending are its reservations not settled yet, by reservation id.
	Pending map[string]*openRow `json:"open"`
}

func newWOTally(wo string) *woTally {
	return &woTally{Version: woTallyVersion, WorkOrder: wo, Sessions: map[string]Spend{}, Pending: map[string]*openRow{}}
}

// fold takes the work order's next LLM_RESERVED or LLM_CALL entry, in seq
// order, by ledgerSpend.add's rules (and tally.fold's): a reservation
// counts in full until an LLM_CALL settles it; every LLM_CALL counts.
func (t *woTally) fold(e *ledger.Entry) {
	call, actual, o := foldOpen(t.Pending, e)
	if !call {
		return
	}
	session := str(e.Metadata, "session_id")
	if o != nil {
		session = o.Session
	}
	t.Settled = t.Settled.add(actual)
	if session != "" {
		t.Sessions[session] = t.Sessions[session].add(actual)
	}
}

// woSpend is what a work order's budgets sum: its tally's settled spend
// and the rows of its reservations open (this batch's included), which
// the judge of abandoned reservations settles.
type woSpend struct {
	t    *woTally
	open *ledgerSpend
}

func (t *woTally) spend() *woSpend {
	return &woSpend{t: t, open: openRows(t.Pending)}
}

// openRows are pending reservations as rows, in seq order.
func openRows(pending map[string]*openRow) *ledgerSpend {
	ids := make([]string, 0, len(pending))
	for rid := range pending {
		ids = append(ids, rid)
	}
	sort.Slice(ids, func(i, j int) bool { return pending[ids[i]].Seq < pending[ids[j]].Seq })
	open := newLedgerSpend()
	for _, rid := range ids {
		o := pending[rid]
		open.reserved[rid] = &spendRow{max: o.Max, reserved: true, wo: o.WO, session: o.Session, provider: o.Provider, subject: o.Subject,
			seq: o.Seq, meta: o.Meta, prompts: o.Prompts, boot: str(o.Meta, "inflight_boot_id"), lock: str(o.Meta, "inflight_file")}
		open.order = append(open.order, rid)
	}
	return open
}

// ofWorkOrder is the spend under the work order's budget.
func (w *woSpend) ofWorkOrder() Spend { return w.t.Settled.add(w.open.total(nil)) }

// ofSession is the spend under session s's limit.
func (w *woSpend) ofSession(s string) Spend {
	return w.t.Sessions[s].add(w.open.total(func(r *spendRow) bool { return r.session == s }))
}

// readWOTally reads work order wo's tally file: nil when there is no key,
// no file, not a regular file, a MAC that is not key's over its bytes, or
// a tally that does not parse, is of another version or names another
// work order (recomputed: never an error).
func readWOTally(dir, wo string, key []byte) *woTally {
	b := readSealed(woTallyFile(dir, wo), key, woTallyMAC)
	if b == nil {
		return nil
	}
	t := newWOTally(wo)
	if decodeNumbers(b, t) != nil || t.Version != woTallyVersion || t.WorkOrder != wo || t.Size < 0 ||
		t.Sessions == nil || !wellFormedOpen(t.Pending) {
		return nil
	}
	return t
}

// loadWOTally returns work order wo's tally as of the ledger state st, for
// a caller holding the budget lock: the file when believed, caught up;
// else recomputed from the work order's entries. It writes the tally back
// (a failure is only a warning). With no key it reads and writes none.
func loadWOTally(ctx context.Context, dir string, store ledger.Store, st ledger.State, key []byte, wo string, warnf func(string, ...any)) (*woTally, error) {
	if !workorder.ValidID(wo) {
		// Never a path from an id that is not one (callers checked it).
		return nil, fmt.Errorf("%q is not a work-order id", wo)
	}
	t := readWOTally(dir, wo, key)
	if t != nil && !holdsTree(store, st, t.Size, t.Root) {
		t = nil
	}
	var start int64
	if t == nil {
		t = newWOTally(wo)
		if key != nil {
			// Begun from nothing: from the work order's first WO_CREATED,
			// as checked reads found it (created.go).
			c, err := loadCreated(ctx, dir, store, st, key, warnf)
			if err != nil {
				return nil, err
			}
			start = c.First[wo] // 0 when there is none: the whole ledger
		}
	}
	if err := t.catchUp(ctx, store, st, key != nil, start); err != nil {
		return nil, err
	}
	if key == nil {
		return t, nil
	}
	if err := writeSealed(woTallyFile(dir, wo), key, woTallyMAC, t); err != nil && warnf != nil {
		warnf("%s: %v: the next call sums from the older tally", woTallyFile(dir, wo), err)
	}
	return t, nil
}

// catchUp folds the work order's entries from t.Size up to st.Size;
// sealed, for a tally that will be sealed, reads every entry between
// checked (foldSince). A tally begun from nothing (no root yet) and
// sealed reads from start, the seq of the work order's first WO_CREATED
// (loadCreated), not from the ledger's first entry: none of its entries
// comes before it (the gateway calls for a work order State finds).
func (t *woTally) catchUp(ctx context.Context, store ledger.Store, st ledger.State, sealed bool, start int64) error {
	if t.Size < st.Size {
		q := ledger.Query{EventTypes: []string{EventReserved, EventCall}, Subject: t.WorkOrder, From: t.Size}
		if sealed && t.Root == "" {
			q.From = max(t.Size, start)
		}
		if err := foldSince(ctx, store, q, t.Root, st, sealed, t.fold); err != nil {
			return err
		}
	}
	t.Size, t.Root = st.Size, hex.EncodeToString(st.Root[:])
	return nil
}

// recheckWOTallies is recover's repair of the work-order tallies: each in
// HO2's ledger directory is recomputed from its work order's entries and
// rewritten, and one that was not believed, or that disagreed with the
// ledger once caught up, or that cannot be rewritten, is named in a
// warning. So is a reservation of its work order whose recorded wo_spent
// (the sums its call was reserved against) is below what the work
// order's entries before it sum to: a read hidden from that call, whose
// lie the tally may have carried since (README, cp-llm's limits). A plane
// without a key keeps none.
func recheckWOTallies(ctx context.Context, dir string, store ledger.Store, tier plane.Tier, warnf func(string, ...any)) ([]*HiddenRead, error) {
	key, err := woTallyKeyOf(tier)
	if err != nil || key == nil {
		return nil, err
	}
	st, err := store.State(ctx)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(dir, "ledger"))
	if err != nil {
		return nil, err
	}
	// The truth, from the work orders' entries, in one checked read of
	// the whole ledger (what recover rechecks must not be what an index
	// or a scan could hide), for every work order with LLM entries, with
	// a tally file or not (a tally removed after it sealed a lie must not
	// hide the lie from recover); and each work order's first reservation
	// made against sums below the ledger's at its seq (its wo_spent): a
	// read hidden from that call. The first WO_CREATED of each work order
	// (created.go) comes from the same read.
	truths := map[string]*woTally{}
	first := newCreated()
	hidden := map[string]*HiddenRead{}
	q := ledger.Query{EventTypes: []string{EventReserved, EventCall, workorder.EventCreated}}
	if err := ledger.FindChecked(ctx, store, q, nil, st, func(e *ledger.Entry) {
		if e.EventType == workorder.EventCreated {
			first.fold(e)
			return
		}
		if !workorder.ValidID(e.SubmissionID) {
			return
		}
		truth := truths[e.SubmissionID]
		if truth == nil {
			truth = newWOTally(e.SubmissionID)
			truths[e.SubmissionID] = truth
		}
		if b, ok := spendOf(e.Metadata["wo_spent"]); ok && hidden[truth.WorkOrder] == nil && e.EventType == EventReserved {
			if s := truth.spend().ofWorkOrder(); b.below(s) {
				hidden[truth.WorkOrder] = &HiddenRead{WorkOrderID: truth.WorkOrder, ReservationID: str(e.Metadata, "reservation_id"), ReservedSeq: e.Seq, Believed: b, Ledger: s}
			}
		}
		truth.fold(e)
	}); err != nil {
		return nil, err
	}
	root := hex.EncodeToString(st.Root[:])
	first.Size, first.Root = st.Size, root
	old := readCreated(dir, key)
	agreed := old != nil && holdsTree(store, st, old.Size, old.Root)
	if agreed {
		// Believed: caught up as a call would, it must say the same.
		if err := old.catchUp(ctx, store, st); err != nil {
			return nil, err
		}
		agreed = maps.Equal(old.First, first.First)
	}
	if _, err := os.Lstat(createdFile(dir)); err == nil && !agreed {
		warnf("%s did not match HO2's ledger: rebuilt from the ledger", createdFile(dir))
	}
	if err := writeSealed(createdFile(dir), key, createdMAC, first); err != nil {
		warnf("%s: %v: not rewritten", createdFile(dir), err)
	}
	var found []*HiddenRead
	for _, id := range slices.Sorted(maps.Keys(hidden)) {
		found = append(found, hidden[id])
		warnf("%s", hidden[id])
	}
	for _, e := range ents {
		id, ok := woTallyID(e.Name())
		if !ok {
			continue
		}
		truth := truths[id]
		if truth == nil {
			truth = newWOTally(id) // a tally of a work order with no LLM entries
		}
		truth.Size, truth.Root = st.Size, root
		old := readWOTally(dir, id, key)
		agreed := old != nil && holdsTree(store, st, old.Size, old.Root)
		if agreed {
			if err := old.catchUp(ctx, store, st, true, 0); err != nil {
				return nil, err
			}
			x, _ := json.Marshal(old)
			y, _ := json.Marshal(truth)
			agreed = bytes.Equal(x, y)
		}
		if !agreed {
			warnf("%s did not match HO2's ledger: recomputed from the ledger", woTallyFile(dir, id))
		}
		// Not written (a directory planted in its place): a warning, as
		// the caps' tally's is, never the end of recover's repair (the
		// next call recomputes what it cannot read).
		if err := writeSealed(woTallyFile(dir, id), key, woTallyMAC, truth); err != nil {
			warnf("%s: %v: not rewritten", woTallyFile(dir, id), err)
		}
	}
	return found, nil
}

// HiddenRead is a reservation made against a work order's sums below the
// ledger's at its seq (its recorded wo_spent below what the entries before
// it sum to): a read of the work order's entries was hidden from that call
// (an index or ledger edited for its length), and its tally may have
// carried the lower sums since.
type HiddenRead struct {
	WorkOrderID   string `json:"work_order_id"`
	ReservationID string `json:"reservation_id"`
	ReservedSeq   int64  `json:"reserved_seq"`
	Believed      Spend  `json:"believed"`
	Ledger        Spend  `json:"ledger"`
}

func (h *HiddenRead) String() string {
	return fmt.Sprintf("work order %s: reservation %s (HO2 seq %d) was made against sums below the ledger's (believed %d calls, %d tokens, %d micro-USD; the ledger's %d, %d, %d): a read of its entries was hidden from that call",
		h.WorkOrderID, h.ReservationID, h.ReservedSeq, h.Believed.Calls, h.Believed.Tokens, h.Believed.MicroUSD, h.Ledger.Calls, h.Ledger.Tokens, h.Ledger.MicroUSD)
}
