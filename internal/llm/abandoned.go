package llm

import (
	"context"
	"fmt"
	"os"

	"github.com/control-plane/cp/internal/lockfile"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// StatusAbandoned settles a reservation whose caller ended without
// settling it (killed mid-call): its LLM_CALL, written by the next call
// that sums it or by recover, charges the whole reservation.
const StatusAbandoned = "abandoned"

// Settled is one abandoned reservation settled in full.
type Settled struct {
	ReservationID string `json:"reservation_id"`
	// ReservedSeq is the LLM_RESERVED entry's seq in HO2's ledger.
	ReservedSeq  int64  `json:"reserved_seq"`
	WorkOrderID  string `json:"work_order_id,omitempty"`
	SessionID    string `json:"session_id,omitempty"`
	Subject      string `json:"subject"`
	ProviderID   string `json:"provider_id"`
	CostMicroUSD int64  `json:"cost_micro_usd"`
	Tokens       int64  `json:"tokens"`
	// LedgerEntryID and Seq name the LLM_CALL that settled it.
	LedgerEntryID string `json:"ledger_entry_id,omitempty"`
	Seq           int64  `json:"seq,omitempty"`
}

// judge decides which unsettled reservations are abandoned: marked by a
// caller on this boot whose in-flight lock nobody holds any longer. It
// opens its own description of the lock file (one that holds no lock),
// once, when the first reservation to judge comes.
type judge struct {
	dir     string
	f       *os.File
	id      string // f's fileID
	err     error
	settled map[string]bool // reservations settled in this step already
	// store, when set, is the budget ledger, read again for a
	// reservation whose mark is found free (settledSince).
	store ledger.Store
}

func newJudge(dir string) *judge { return &judge{dir: dir, settled: map[string]bool{}} }

func (j *judge) close() {
	if j.f != nil {
		j.f.Close()
	}
}

// abandoned reports whether row rid is an abandoned reservation: marked
// on this boot, on the very file the judge opened (the same inflight_file:
// a lock on another file, one replaced since or another directory's,
// cannot be seen from this one), and nobody holds its lock.
func (j *judge) abandoned(rid string, row *spendRow) bool {
	if row.settled || !j.judgeable(row) {
		return false
	}
	held, err := inflightHeld(j.f, rid)
	return err == nil && !held && !j.settledSince(rid, row.seq)
}

// settledSince reports whether an LLM_CALL of reservation rid was
// appended after its LLM_RESERVED (at seq reserved): one its caller
// appended after the sums being judged were read, then letting go of its
// mark (it holds the mark until that LLM_CALL is durable, so a read made
// after the mark was found free sees it). Settling it in full as well
// would charge the call twice (a call refused that the budget allowed:
// TestJudgeSettledSince). A read that fails counts as settled: the
// reservation keeps counting in full, and nothing is charged twice.
func (j *judge) settledSince(rid string, reserved int64) bool {
	if j.store == nil {
		return false
	}
	found := false
	err := j.store.Find(context.Background(), ledger.Query{EventTypes: []string{EventCall}, From: reserved + 1}, func(e *ledger.Entry) bool {
		found = str(e.Metadata, "reservation_id") == rid
		return !found
	})
	return err != nil || found
}

// judgeable reports whether row's mark can be judged here: made on this
// boot, on the lock file the judge has open. A judge that cannot open the
// file judges nothing (fail closed: unsettled reservations count in full).
func (j *judge) judgeable(row *spendRow) bool {
	if row.boot == "" || row.boot != bootID() || row.lock == "" || !inflightSupported {
		return false
	}
	if j.f == nil && j.err == nil {
		if j.f, j.err = lockfile.Open(inflightFile(j.dir)); j.err == nil {
			if j.id, j.err = fileID(j.f); j.err != nil {
				j.f.Close()
				j.f = nil
			}
		}
	}
	return j.err == nil && row.lock == j.id
}

// settle finds the abandoned reservations among ls's rows and returns the
// LLM_CALL drafts that settle them in full (marking their rows settled at
// their whole reservation, so that ls's sums do not change): each at most
// once per judge, whichever sums find it.
func (j *judge) settle(ls *ledgerSpend, by string) ([]ledger.Draft, []*Settled) {
	var ds []ledger.Draft
	var ss []*Settled
	for _, rid := range ls.order {
		row := ls.reserved[rid]
		if row.settled {
			continue
		}
		if j.settled[rid] {
			row.settled, row.actual = true, row.max
			continue
		}
		if !j.abandoned(rid, row) {
			continue
		}
		j.settled[rid] = true
		row.settled, row.actual = true, row.max
		d, st := settlement(rid, row, by)
		ds, ss = append(ds, d), append(ss, st)
	}
	return ds, ss
}

// settlement is the LLM_CALL that charges reservation rid in full: its
// whole cost and tokens (max_tokens as output, the input bound as input),
// marked charged_in_full, naming the reservation's entry.
func settlement(rid string, row *spendRow, by string) (ledger.Draft, *Settled) {
	meta := map[string]any{"_tier": "HO2"}
	for _, k := range []string{"subject", "role", "work_order_id", "session_id", "prompts_used", "weakened_control",
		"provider_id", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.request.max_tokens"} {
		if v, ok := row.meta[k]; ok {
			meta[k] = v
		}
	}
	out := min(num(row.meta, "gen_ai.request.max_tokens"), row.max.Tokens)
	meta["reservation_id"], meta["status"] = rid, StatusAbandoned
	meta["reserved_seq"] = row.seq
	meta["cost_micro_usd"], meta["reserved_micro_usd"] = row.max.MicroUSD, row.max.MicroUSD
	meta["gen_ai.usage.input_tokens"], meta["gen_ai.usage.output_tokens"] = row.max.Tokens-out, out
	meta["charged_in_full"] = true
	meta["settled_by"] = by
	d := ledger.Draft{EventType: EventCall, SubmissionID: row.wo, Decision: StatusAbandoned,
		Reason:      fmt.Sprintf("reservation %s (seq %d) was never settled and its caller is gone (killed mid-call): charged in full, %d micro-USD, %d tokens", rid, row.seq, row.max.MicroUSD, row.max.Tokens),
		PromptsUsed: row.prompts, Metadata: meta}
	return d, &Settled{ReservationID: rid, ReservedSeq: row.seq, WorkOrderID: row.wo, SessionID: row.session, Subject: row.subject,
		ProviderID: row.provider, CostMicroUSD: row.max.MicroUSD, Tokens: row.max.Tokens}
}

// RecoverResult is what Recover found and did.
type RecoverResult struct {
	// Settled are the abandoned reservations it settled, each by one
	// LLM_CALL (status abandoned, charged in full).
	Settled []*Settled `json:"settled"`
	// InFlight counts unsettled reservations whose caller still holds its
	// mark: calls in flight, left alone.
	InFlight int `json:"in_flight"`
	// Unjudged counts unsettled reservations no caller here can judge
	// (made on another boot or host, before reservations were marked, or
	// marked on a lock file that is not the one at the path now): they
	// keep counting in full.
	Unjudged int `json:"unjudged"`
	// HiddenReads are the reservations made against a work order's sums
	// below the ledger's (recheckWOTallies): a security finding, also on
	// stderr.
	HiddenReads []*HiddenRead `json:"hidden_reads,omitempty"`
}

// Recover settles every abandoned reservation of the plane: holding the
// budget ledger's lock, it reads every LLM_RESERVED and LLM_CALL (on a
// plane with a checkpoint key, one checked read of the whole ledger,
// ledger.FindChecked, which rebuilds the caps' tally; without one, through
// the index), judges each reservation never settled, and
// appends one LLM_CALL (status abandoned, charged in full) per abandoned
// one, in one append. Idempotent: a settled reservation is never judged
// again, and the lock makes two recovers (or a recover and a call that
// sums the same reservations) settle each at most once. It is also the
// repair of the sums' tallies: the caps' and each work order's are
// recomputed from the ledger and rewritten (and llm-created.json, from a
// second checked read), and any that was not believed or disagreed is
// named in a warning, as is a reservation made against a work order's
// sums below the ledger's (recheckWOTallies).
func (g *Gateway) Recover(ctx context.Context) (*RecoverResult, error) {
	dir := BudgetLedgerDir(g.Root)
	store, tier, err := plane.OpenLedger(dir, plane.ForAppend, g.Actor)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	release, err := holdLedger(ctx, dir, store)
	if err != nil {
		return nil, err
	}
	defer release()
	// The sums' tally (tally.go), recomputed from the whole ledger: recover
	// is also its repair.
	key, err := tallyKey(tier)
	if err != nil {
		return nil, err
	}
	t, disagreed, err := loadTally(ctx, dir, store, key, true, g.warnf)
	if err != nil {
		return nil, err
	}
	if disagreed {
		g.warnf("%s did not match HO2's ledger: recomputed from the ledger", tallyFile(dir))
	}
	// And each work order's tally (wotally.go).
	hidden, err := recheckWOTallies(ctx, dir, store, tier, g.warnf)
	if err != nil {
		return nil, err
	}
	all := t.spend().open
	j := newJudge(dir)
	j.store = store
	defer j.close()
	res := &RecoverResult{Settled: []*Settled{}, HiddenReads: hidden}
	ds, ss := j.settle(all, "recover")
	for _, rid := range all.order {
		row := all.reserved[rid]
		switch {
		case row.settled || row.max.Calls == 0:
		case !j.judgeable(row) && j.err == nil:
			res.Unjudged++
		default:
			res.InFlight++
		}
	}
	if len(ds) > 0 {
		es, err := store.Append(context.WithoutCancel(ctx), ds)
		if err != nil {
			return nil, err
		}
		for i, s := range ss {
			s.LedgerEntryID, s.Seq = es[i].ID, es[i].Seq
		}
	}
	res.Settled = ss
	if res.Settled == nil {
		res.Settled = []*Settled{}
	}
	return res, nil
}
