package llm

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Event types the gateway writes, all in HO2's ledger (the budget ledger:
// see BudgetLedgerDir).
const (
	// EventReserved is a budget reservation, appended under the ledger's
	// lock before a call: the largest cost and tokens the call could reach.
	EventReserved = "LLM_RESERVED"
	// EventCall is a call's evidence, settling its reservation to the
	// usage the provider reported (or, for a call that failed part-way,
	// the usage so far).
	EventCall = "LLM_CALL"
	// EventRefused is a call the gateway refused before any provider was
	// asked (a budget, a worker without a prompt pack, a pack or work
	// order that does not allow it), with its code.
	EventRefused = "LLM_REFUSED"
)

// BudgetLedgerDir is the tier directory whose ledger holds every
// LLM_RESERVED, LLM_CALL and LLM_REFUSED entry: HO2's. A work order lives
// in HO2 (WO_CREATED, WO_STARTED) and spans its sessions, so its budget is
// summed in one ledger under one lock, whichever session spends it; the
// plane's, providers' and subjects' caps are summed there too. The
// entries are the consequences of the llm action the firewall judged
// (DESIGN.md §8), so a worker's call writes them as the tool's own.
func BudgetLedgerDir(root string) string {
	return filepath.Join(root, filepath.FromSlash(plane.Layout[1].Dir))
}

// Spend is what calls spent (or hold reserved): calls, tokens (input and
// output) and integer micro-USD.
type Spend struct {
	Calls    int64 `json:"calls"`
	Tokens   int64 `json:"tokens"`
	MicroUSD int64 `json:"micro_usd"`
}

// fields is s as an entry's metadata holds it.
func (s Spend) fields() map[string]any {
	return map[string]any{"calls": s.Calls, "tokens": s.Tokens, "micro_usd": s.MicroUSD}
}

// spendOf reads a Spend from an entry's metadata value v (fields); ok is
// false when v is not one.
func spendOf(v any) (s Spend, ok bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return Spend{}, false
	}
	for k, dst := range map[string]*int64{"calls": &s.Calls, "tokens": &s.Tokens, "micro_usd": &s.MicroUSD} {
		if _, has := m[k]; !has {
			return Spend{}, false
		}
		*dst = num(m, k)
	}
	return s, true
}

// below reports whether any kind of s is below t's.
func (s Spend) below(t Spend) bool {
	return s.Calls < t.Calls || s.Tokens < t.Tokens || s.MicroUSD < t.MicroUSD
}

func (s Spend) add(t Spend) Spend {
	return Spend{Calls: s.Calls + t.Calls, Tokens: s.Tokens + t.Tokens, MicroUSD: s.MicroUSD + t.MicroUSD}
}

// Limit is what a budget allows; a nil field is no limit of its kind.
type Limit struct {
	Calls    *int64 `json:"calls,omitempty"`
	Tokens   *int64 `json:"tokens,omitempty"`
	MicroUSD *int64 `json:"micro_usd,omitempty"`
}

// Budget is one budget a call is held to: its scope (work_order, session,
// plane, provider, subject), the key within it, its limit, and what was
// spent or is reserved under it before this call.
type Budget struct {
	Scope string `json:"scope"`
	Key   string `json:"key,omitempty"`
	Limit Limit  `json:"limit"`
	Spent Spend  `json:"spent"`
}

// over names the first kind of the limit that spent plus this call would
// pass, or "".
func (b Budget) over(this Spend) (kind string, limit, would int64) {
	check := func(l *int64, spent, add int64) bool { return l != nil && spent+add > *l }
	switch {
	case check(b.Limit.Calls, b.Spent.Calls, this.Calls):
		return "calls", *b.Limit.Calls, b.Spent.Calls + this.Calls
	case check(b.Limit.Tokens, b.Spent.Tokens, this.Tokens):
		return "tokens", *b.Limit.Tokens, b.Spent.Tokens + this.Tokens
	case check(b.Limit.MicroUSD, b.Spent.MicroUSD, this.MicroUSD):
		return "micro_usd", *b.Limit.MicroUSD, b.Spent.MicroUSD + this.MicroUSD
	}
	return "", 0, 0
}

// Reservation is a durable LLM_RESERVED entry's content.
type Reservation struct {
	ID          string `json:"reservation_id"`
	WorkOrderID string `json:"work_order_id,omitempty"`
	SessionID   string `json:"session_id,omitempty"`
	Subject     string `json:"subject"`
	ProviderID  string `json:"provider_id"`
	Model       string `json:"model"`
	// Max is the largest spend the call could reach: 1 call, max_tokens
	// plus the input bound in tokens, Target.MaxCost in micro-USD.
	Max   Spend        `json:"max"`
	Entry ledger.Entry `json:"-"`
}

// newReservationID returns RSV- and 16 random hex digits. The id names a
// reservation (its LLM_CALL settles it by the id; its in-flight mark is a
// lock at an offset the id gives) and need only be unique, not secret:
// every entry is the gateway's own, and whoever could act on a guessed id
// (hold its lock in inflight_file) can write HO2's directory anyway, and
// then the reservation counts in full (fail closed). math/rand/v2's
// generator (ChaCha8, seeded from the kernel at each process's start)
// gives 64 bits as unlikely to collide as crypto/rand's, without the
// getrandom state and the DRBG crypto/rand sets up on its first read: 5
// page faults and 0.1 ms of a gateway process.
func newReservationID() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], rand.Uint64())
	return "RSV-" + hex.EncodeToString(b[:])
}

// holdLedger takes the budget ledger's lock and keeps it until release
// (plane.HoldLedger), so that the sum and the reservation's append are one
// step against every other gateway: the file store's append lock, or for a
// tier in PostgreSQL the advisory lock budgetLockKey.
func holdLedger(ctx context.Context, dir string, s ledger.Store) (release func(), err error) {
	return plane.HoldLedger(ctx, dir, s, budgetLockKey)
}

// budgetLockKey names the budget's advisory lock of a ledger in
// PostgreSQL.
const budgetLockKey = "llm-budget"

// ledgerSpend is the spend of the LLM entries found, per reservation: a
// settled reservation counts what its LLM_CALL charged, one never settled
// (a call in flight, or a caller killed) counts its whole reservation.
type ledgerSpend struct {
	reserved map[string]*spendRow
	order    []string
}

type spendRow struct {
	max, actual Spend
	settled     bool
	// reserved: its LLM_RESERVED was found (else its work order, session,
	// provider and subject are its LLM_CALL's).
	reserved          bool
	wo, session       string
	provider, subject string
	// The reservation, for settling it when its caller is gone: its
	// entry's seq, metadata and prompts_used, and the boot id of the
	// kernel that holds its in-flight mark ("" for none: never judged).
	seq     int64
	meta    map[string]any
	prompts []string
	boot    string
	lock    string // inflight_file: the lock file its mark is on (fileID)
}

func newLedgerSpend() *ledgerSpend { return &ledgerSpend{reserved: map[string]*spendRow{}} }

// add takes one LLM_RESERVED or LLM_CALL entry. Its rules are the
// tally's (tally.fold): a reservation counts in full until an LLM_CALL
// settles it, then what the LLM_CALL charged; every LLM_CALL of a
// reservation counts (a second, say a late caller's beside the judge's
// settlement of its reservation as abandoned, is more spend, never less);
// an LLM_CALL whose reservation is not found counts what it charged under
// its own session, provider and subject.
func (ls *ledgerSpend) add(e *ledger.Entry) {
	rid := str(e.Metadata, "reservation_id")
	if rid == "" {
		return
	}
	row := ls.reserved[rid]
	if row == nil {
		row = &spendRow{}
		ls.reserved[rid] = row
		ls.order = append(ls.order, rid)
	}
	switch e.EventType {
	case EventReserved:
		row.fromReserved(e)
	case EventCall:
		if !row.reserved {
			row.wo, row.session = str(e.Metadata, "work_order_id"), str(e.Metadata, "session_id")
			row.provider, row.subject = str(e.Metadata, "provider_id"), str(e.Metadata, "subject")
		}
		row.settled = true
		row.actual = row.actual.add(callSpend(e))
	}
}

// fromReserved sets row from its LLM_RESERVED entry.
func (row *spendRow) fromReserved(e *ledger.Entry) {
	row.reserved = true
	row.max = Spend{Calls: 1, Tokens: num(e.Metadata, "max_tokens_total"), MicroUSD: num(e.Metadata, "max_cost_micro_usd")}
	row.wo, row.session = str(e.Metadata, "work_order_id"), str(e.Metadata, "session_id")
	row.provider, row.subject = str(e.Metadata, "provider_id"), str(e.Metadata, "subject")
	row.seq, row.meta, row.prompts, row.boot = e.Seq, e.Metadata, e.PromptsUsed, str(e.Metadata, "inflight_boot_id")
	row.lock = str(e.Metadata, "inflight_file")
}

// callSpend is what an LLM_CALL charged (a call not made: no call).
func callSpend(e *ledger.Entry) Spend {
	calls := int64(1)
	if str(e.Metadata, "status") == StatusNotCalled {
		calls = 0
	}
	return Spend{Calls: calls, Tokens: num(e.Metadata, "gen_ai.usage.input_tokens") + num(e.Metadata, "gen_ai.usage.output_tokens"),
		MicroUSD: num(e.Metadata, "cost_micro_usd")}
}

// total sums the rows keep selects. An LLM_CALL whose reservation is not
// found still counts what it charged: more spend, never less.
func (ls *ledgerSpend) total(keep func(*spendRow) bool) Spend {
	var s Spend
	for _, rid := range ls.order {
		row := ls.reserved[rid]
		if keep != nil && !keep(row) {
			continue
		}
		if row.settled {
			s = s.add(row.actual)
		} else {
			s = s.add(row.max)
		}
	}
	return s
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// num reads an integer metadata value (json.Number from a parsed entry, or
// an int64 from a draft).
func num(m map[string]any, k string) int64 {
	switch v := m[k].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	case interface{ Int64() (int64, error) }:
		n, _ := v.Int64()
		return n
	}
	return 0
}

// BudgetError is BUDGET_EXCEEDED: the call's largest possible spend would
// pass a budget.
type BudgetError struct {
	Budget Budget
	Kind   string // calls, tokens or micro_usd
	Would  int64
	Max    Spend
	// Recorded is the LLM_REFUSED entry that holds the refusal.
	Recorded *ledger.Entry
}

func (e *BudgetError) Error() string {
	what := e.Budget.Scope
	if e.Budget.Key != "" {
		what += " " + e.Budget.Key
	}
	limit := int64(0)
	switch e.Kind {
	case "calls":
		limit = *e.Budget.Limit.Calls
	case "tokens":
		limit = *e.Budget.Limit.Tokens
	case "micro_usd":
		limit = *e.Budget.Limit.MicroUSD
	}
	return fmt.Sprintf("budget of %s: %s would reach %d with this call, above its limit of %d (spent or reserved: %d calls, %d tokens, %d micro-USD)",
		what, e.Kind, e.Would, limit, e.Budget.Spent.Calls, e.Budget.Spent.Tokens, e.Budget.Spent.MicroUSD)
}

// Code returns BUDGET_EXCEEDED.
func (e *BudgetError) Code() string { return CodeBudgetExceeded }

// ErrorDetails names the budget, what it allows, what is spent and what
// this call would reserve.
func (e *BudgetError) ErrorDetails() map[string]any {
	d := map[string]any{"scope": e.Budget.Scope, "kind": e.Kind, "limit": e.Budget.Limit, "spent": e.Budget.Spent, "this_call_max": e.Max}
	if e.Budget.Key != "" {
		d["key"] = e.Budget.Key
	}
	return d
}

// ErrorHint says where budgets come from.
func (e *BudgetError) ErrorHint() string {
	switch e.Budget.Scope {
	case "work_order":
		return "the work order's budget (llm_calls, llm_tokens, llm_cost_usd; an absent one allows nothing) counts every call and every unsettled reservation of its sessions: ask for a smaller max_tokens, or create a work order with a larger budget"
	case "session":
		return "config/router_policy.json limits.llm_calls_per_session caps the calls of one session"
	}
	return "the caps of config/providers.json (caps.plane_micro_usd, caps.providers, caps.subjects) count every call and unsettled reservation on the plane"
}

// RecordedAs names the LLM_REFUSED entry.
func (e *BudgetError) RecordedAs() (string, int64) {
	if e.Recorded == nil {
		return "", 0
	}
	return e.Recorded.ID, e.Recorded.Seq
}

var nowUTC = func() time.Time { return time.Now().UTC() }
