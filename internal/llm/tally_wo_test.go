package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// woRes is a reservation of a random history: what its LLM_RESERVED
// holds, and what its LLM_CALLs copy (as the gateway's do).
type woRes struct {
	rid, wo, session, provider, subject string
	max                                 Spend
}

// woMeta is the metadata the gateway gives a call's entries (baseMeta).
func (x woRes) meta() map[string]any {
	m := map[string]any{"reservation_id": x.rid, "provider_id": x.provider, "subject": x.subject}
	if x.wo != "" {
		m["work_order_id"] = x.wo
	}
	if x.session != "" {
		m["session_id"] = x.session
	}
	return m
}

func (x woRes) reserved() ledger.Draft {
	m := x.meta()
	m["max_tokens_total"], m["max_cost_micro_usd"] = x.max.Tokens, x.max.MicroUSD
	return ledger.Draft{EventType: EventReserved, SubmissionID: x.wo, Decision: "RESERVED", Reason: "r", Metadata: m}
}

func (x woRes) call(status string, in, out, micro int64) ledger.Draft {
	m := x.meta()
	m["status"], m["gen_ai.usage.input_tokens"], m["gen_ai.usage.output_tokens"], m["cost_micro_usd"] = status, in, out, micro
	return ledger.Draft{EventType: EventCall, SubmissionID: x.wo, Decision: status, Reason: "c", Metadata: m}
}

// woWholeSum is what a work order's budgets summed before the tally, and
// still sum on a plane that keeps none: its entries, through the index.
func woWholeSum(t *testing.T, l ledger.Store, wo string) *ledgerSpend {
	t.Helper()
	ls := newLedgerSpend()
	require.NoError(t, l.Find(context.Background(), sumQuery(wo), func(e *ledger.Entry) bool {
		ls.add(e)
		return true
	}))
	return ls
}

// TestTallyAgreesWithWholeSums: for random histories of the budget
// ledger (reservations of several work orders, sessions, providers and
// subjects; settlements ok, cancelled, not called and abandoned; calls
// without a reservation, a second call of a reservation, a reservation
// settled from another work order's entries; refusals and other entries),
// appended in random batches, the tally caught up at random points, the
// tally built from nothing, a plane's without a key (rebuilt at every
// call) and the whole sums (each work order's entries through the index,
// the caps' every entry) give the same spend to every work order, every
// session of it, and every cap.
func TestTallyAgreesWithWholeSums(t *testing.T) {
	ctx := context.Background()
	wos := []string{"", "WO-20260101-001", "WO-20260101-002", "WO-20260101-003"}
	sessions := []string{"", "SES-1", "SES-2", "SES-3"}
	providers, subjects := []string{"p", "q"}, []string{"a", "b", "c"}
	for seed := range 24 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 32))
			pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
			dir, l := tallyLedger(t)
			var open, settled []woRes
			n := 0
			fresh := func() woRes {
				n++
				return woRes{rid: fmt.Sprintf("RSV-%016x", n), wo: pick(wos), session: pick(sessions), provider: pick(providers), subject: pick(subjects),
					max: Spend{Calls: 1, Tokens: 100 + r.Int64N(900), MicroUSD: r.Int64N(5000)}}
			}
			check := func(step int, tl *tally) {
				t.Helper()
				keyless, disagreed, err := loadTally(ctx, dir, l, nil, false, t.Logf)
				require.NoError(t, err)
				require.False(t, disagreed)
				require.True(t, sameSums(tl, keyless), "step %d: the tally caught up is the one built from nothing", step)
				ts := tl.spend()
				for _, wo := range wos[1:] {
					whole := woWholeSum(t, l, wo)
					require.Equal(t, whole.ofWorkOrder(wo), ts.ofWorkOrder(wo), "step %d: work order %s", step, wo)
					for _, s := range sessions[1:] {
						require.Equal(t, whole.ofSession(wo, s), ts.ofSession(wo, s), "step %d: work order %s, session %s", step, wo, s)
					}
				}
				whole := wholeSum(t, l)
				require.Equal(t, whole.total(nil), ts.ofPlane(), "step %d: plane", step)
				for _, p := range providers {
					require.Equal(t, whole.total(func(r *spendRow) bool { return r.provider == p }), ts.ofProvider(p), "step %d: provider %s", step, p)
				}
				for _, s := range subjects {
					require.Equal(t, whole.total(func(r *spendRow) bool { return r.subject == s }), ts.ofSubject(s), "step %d: subject %s", step, s)
				}
			}
			for step := range 30 {
				var ds []ledger.Draft
				for range 1 + r.IntN(12) {
					switch k := r.IntN(20); {
					case k < 7 || len(open) == 0:
						x := fresh()
						open = append(open, x)
						ds = append(ds, x.reserved())
					case k < 13:
						i := r.IntN(len(open))
						x := open[i]
						open = append(open[:i], open[i+1:]...)
						settled = append(settled, x)
						switch r.IntN(4) {
						case 0:
							ds = append(ds, x.call(StatusNotCalled, 0, 0, 0))
						case 1: // charged in full (a caller killed)
							ds = append(ds, x.call(StatusAbandoned, x.max.Tokens-10, 10, x.max.MicroUSD))
						case 2:
							ds = append(ds, x.call(StatusCancelled, r.Int64N(50), r.Int64N(50), r.Int64N(x.max.MicroUSD+1)))
						default:
							ds = append(ds, x.call(StatusOK, r.Int64N(500), r.Int64N(100), r.Int64N(x.max.MicroUSD+1)))
						}
					case k < 15: // a call whose reservation is nowhere
						x := fresh()
						ds = append(ds, x.call(StatusOK, r.Int64N(50), r.Int64N(50), r.Int64N(100)))
					case k < 16 && len(settled) > 0:
						// A reservation's second call, naming what the
						// first did (the gateway's calls name their
						// reservation's session, provider and subject).
						x := settled[r.IntN(len(settled))]
						ds = append(ds, x.call(StatusOK, 1, 2, 3))
					case k < 17: // settled from another work order's entries
						// (Its second call, if any, comes from the same
						// entries: from its reservation's, the tally would
						// count the reservation in full and the call too,
						// the whole sum the call only: more, never less.)
						i := r.IntN(len(open))
						x := open[i]
						open = append(open[:i], open[i+1:]...)
						if wo := pick(wos); wo != x.wo {
							x.wo, x.session = wo, pick(sessions)
						}
						settled = append(settled, x)
						ds = append(ds, x.call(StatusOK, 5, 5, 5))
					case k < 19:
						x := fresh()
						m := x.meta()
						delete(m, "reservation_id")
						m["code"] = CodeBudgetExceeded
						ds = append(ds, ledger.Draft{EventType: EventRefused, SubmissionID: x.wo, Decision: "REFUSED", Reason: "over", Metadata: m})
					default:
						ds = append(ds, ledger.Draft{EventType: "WO_STARTED", SubmissionID: pick(wos), Decision: "x", Reason: "not an LLM entry"})
					}
				}
				_, err := l.Append(ctx, ds)
				require.NoError(t, err)
				if r.IntN(3) == 0 {
					continue // caught up later, over several batches
				}
				tl, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
				require.NoError(t, err)
				require.False(t, disagreed, "step %d", step)
				check(step, tl)
			}
			tl, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
			require.NoError(t, err)
			require.False(t, disagreed)
			rebuilt, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, true, t.Logf)
			require.NoError(t, err)
			require.False(t, disagreed, "recover's rebuild agrees with the tally caught up")
			require.True(t, sameSums(tl, rebuilt))
			check(30, rebuilt)
		})
	}
}

// TestTallyWorkOrderNotBelieved: a work order's budget is never summed
// from a tally that does not hold: sums lowered (the MAC kept), a tally
// sealed with another key, one of a larger tree (the ledger rolled back
// under it), or of the version before work orders were tallied: each is
// recomputed from the ledger, and the work order's and its session's
// spend are the ledger's.
func TestTallyWorkOrderNotBelieved(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	a := woRes{rid: "RSV-00000000000000a1", wo: "WO-20260101-001", session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	b := a
	b.rid = "RSV-00000000000000b2"
	_, err := l.Append(ctx, []ledger.Draft{a.reserved(), a.call(StatusOK, 10, 20, 30), b.reserved()})
	require.NoError(t, err)
	truth, _, err := loadTally(ctx, dir, l, tallyTestKey, true, t.Logf)
	require.NoError(t, err)
	want := Spend{Calls: 2, Tokens: 330, MicroUSD: 930}
	require.Equal(t, want, truth.spend().ofWorkOrder(a.wo))
	require.Equal(t, want, truth.spend().ofSession(a.wo, a.session))

	var env tallyEnvelope
	honest, err := os.ReadFile(tallyFile(dir))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(honest, &env))
	var fields map[string]any
	require.NoError(t, json.Unmarshal(env.Tally, &fields))
	for _, k := range []string{"work_orders", "sessions", "open"} {
		fields[k] = map[string]any{}
	}
	zeroed, err := json.Marshal(fields)
	require.NoError(t, err)
	lowered, err := json.Marshal(tallyEnvelope{MAC: env.MAC, Tally: zeroed})
	require.NoError(t, err)
	low := *truth
	low.ByWorkOrder, low.BySession, low.Pending = map[string]Spend{}, map[string]map[string]Spend{}, map[string]*openRow{}
	bigger := low
	bigger.Size = truth.Size + 3
	v2 := map[string]any{"version": 2, "size": truth.Size, "root": truth.Root, "plane": Spend{}, "providers": map[string]any{},
		"subjects": map[string]any{}, "open": map[string]any{}}

	for name, b := range map[string][]byte{
		"lowered in place":                       lowered,
		"another key's":                          sealed(t, []byte("another plane's key, 32 bytes..."), &low),
		"a larger tree's (a ledger rolled back)": sealed(t, tallyTestKey, &bigger),
		"version 2's (no work orders)":           sealed(t, tallyTestKey, v2),
	} {
		require.NoError(t, os.WriteFile(tallyFile(dir), b, 0o644))
		got, disagreed, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
		require.NoError(t, err, name)
		require.True(t, disagreed, "%s tally: not believed", name)
		require.True(t, sameSums(truth, got), "%s tally: recomputed from the ledger", name)
		require.Equal(t, want, got.spend().ofWorkOrder(a.wo), name)
		require.Equal(t, want, got.spend().ofSession(a.wo, a.session), name)
		b, err := os.ReadFile(tallyFile(dir))
		require.NoError(t, err)
		require.Equal(t, string(honest), string(b), "%s tally: replaced by the ledger's", name)
	}
}

// TestReserveWithoutKey: on a plane without a checkpoint key (no tally
// kept) reserve sums a work order's budget and its session's from the
// work order's entries, to what a tally of the same ledger says: settled
// calls at their charge, an open reservation in full, another work
// order's calls not at all, and this batch's reservation for the call
// after it. The call that would pass the budget is refused, and no tally
// is written.
func TestReserveWithoutKey(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	a := func(rid, session string) woRes {
		return woRes{rid: rid, wo: "WO-20260101-001", session: session, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	}
	other := a("RSV-00000000000000f1", "SES-9")
	other.wo = "WO-20260101-002"
	x1, x2, x3, x4 := a("RSV-00000000000000a1", "SES-1"), a("RSV-00000000000000a2", "SES-1"), a("RSV-00000000000000a3", "SES-1"), a("RSV-00000000000000a4", "SES-2")
	_, err := l.Append(ctx, []ledger.Draft{x1.reserved(), x1.call(StatusOK, 10, 20, 30), x2.reserved(), x2.call(StatusNotCalled, 0, 0, 0),
		x3.reserved(), x4.reserved(), x4.call(StatusCancelled, 1, 2, 3), other.reserved(), other.call(StatusOK, 50, 50, 500)})
	require.NoError(t, err)

	calls, tokens, usd := int64(4), int64(1_000_000), json.Number("10")
	wo := &workorder.WorkOrder{ID: x1.wo, Budget: workorder.Budget{LLMCalls: &calls, LLMTokens: &tokens, LLMCostUSD: &usd}}
	g := &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limits: &config.Limits{LLMCallsPerSession: ptr(5)}, limitsLoaded: true}
	prep := func() *prepared {
		return &prepared{call: &Call{Subject: "s", WorkOrderID: x1.wo, SessionID: "SES-1"}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
			approval: &workorder.Approval{ID: x1.wo, WorkOrder: wo}}
	}
	tl, _, err := loadTally(ctx, dir, l, nil, false, nil)
	require.NoError(t, err)
	wantWO, wantSession := tl.spend().ofWorkOrder(x1.wo), tl.spend().ofSession(x1.wo, "SES-1")
	require.Equal(t, Spend{Calls: 3, Tokens: 30 + 300 + 3, MicroUSD: 30 + 900 + 3}, wantWO)
	require.Equal(t, Spend{Calls: 2, Tokens: 330, MicroUSD: 930}, wantSession)

	p1, p2 := prep(), prep()
	got, err := g.reserve(ctx, dir, plane.Tier{}, l, []*prepared{p1, p2}, nil)
	var be *BudgetError
	require.ErrorAs(t, err, &be)
	require.Equal(t, []*prepared{p1}, got, "the first call fits, the second would pass llm_calls")
	require.Equal(t, "work_order", be.Budget.Scope)
	require.Equal(t, Budget{Scope: "work_order", Key: x1.wo, Limit: Limit{Calls: &calls, Tokens: &tokens, MicroUSD: ptr(10_000_000)}, Spent: wantWO}, p1.budgets[0])
	require.Equal(t, wantSession, p1.budgets[1].Spent)
	require.Equal(t, wantWO.add(p1.max), be.Budget.Spent, "the batch's reservation counts for the call after it")
	_, err = os.Lstat(tallyFile(dir))
	require.ErrorIs(t, err, os.ErrNotExist, "no tally without a key")
}

// BenchmarkWorkOrderSum is a work order's budget summed under the lock,
// at 5,000 and 20,000 prior entries of the work order: through the tally
// (loaded, caught up with the last call's two entries, written back)
// against the whole sum of its entries through the index (what every call
// did before the tally carried work orders, and a plane without a
// checkpoint key still does).
func BenchmarkWorkOrderSum(b *testing.B) {
	ctx := context.Background()
	const wo = "WO-20260101-001"
	for _, n := range []int{5_000, 20_000} {
		dir, l := tallyLedger(b)
		const batch = 1000
		for i := 0; i < n; i += batch {
			ds := make([]ledger.Draft, 0, batch)
			for j := i; j < i+batch; j += 2 {
				x := woRes{rid: fmt.Sprintf("RSV-%016x", j), wo: wo, session: "SES-1", provider: "p", subject: "a", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 90}}
				ds = append(ds, x.reserved(), x.call(StatusOK, 10, 10, 3))
			}
			_, err := l.Append(ctx, ds)
			require.NoError(b, err)
		}
		for _, mode := range []string{"tally", "index"} {
			b.Run(fmt.Sprintf("entries=%d/%s", n, mode), func(b *testing.B) {
				if _, _, err := loadTally(ctx, dir, l, tallyTestKey, false, nil); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					release, err := holdLedger(ctx, dir, l)
					if err != nil {
						b.Fatal(err)
					}
					var s woSpend
					if mode == "tally" {
						t, _, err := loadTally(ctx, dir, l, tallyTestKey, false, nil)
						if err != nil {
							b.Fatal(err)
						}
						s = t.spend()
					} else {
						ls := newLedgerSpend()
						if err := l.Find(ctx, sumQuery(wo), func(e *ledger.Entry) bool { ls.add(e); return true }); err != nil {
							b.Fatal(err)
						}
						s = ls
					}
					if s.ofWorkOrder(wo).Calls == 0 || s.ofSession(wo, "SES-1").Calls == 0 {
						b.Fatal("no spend")
					}
					x := woRes{rid: fmt.Sprintf("RSV-b%015x", i), wo: wo, session: "SES-1", provider: "p", subject: "a", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 90}}
					i++
					_, err = l.Append(ctx, []ledger.Draft{x.reserved()})
					release()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := l.Append(ctx, []ledger.Draft{x.call(StatusOK, 10, 10, 3)}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
