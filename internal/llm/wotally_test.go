package llm

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// meta is the metadata the gateway gives a call's entries (baseMeta).
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

// woWholeSum is what a work order's budgets summed before the work-order
// tally: every LLM entry of the work order, through the index.
func woWholeSum(t testing.TB, l ledger.Store, wo string) *ledgerSpend {
	t.Helper()
	ls := newLedgerSpend()
	require.NoError(t, l.Find(context.Background(), ledger.Query{EventTypes: []string{EventReserved, EventCall}, Subject: wo}, func(e *ledger.Entry) bool {
		ls.add(e)
		return true
	}))
	return ls
}

func loadWO(t testing.TB, dir string, l ledger.Store, key []byte, wo string) *woTally {
	t.Helper()
	st, err := l.State(context.Background())
	require.NoError(t, err)
	tl, err := loadWOTally(context.Background(), dir, l, st, key, wo, t.Logf)
	require.NoError(t, err)
	return tl
}

// requireSameWO fails unless two work-order tallies say the same, as
// their files would.
func requireSameWO(t testing.TB, want, got *woTally, msgAndArgs ...any) {
	t.Helper()
	x, err := json.Marshal(want)
	require.NoError(t, err)
	y, err := json.Marshal(got)
	require.NoError(t, err)
	require.JSONEq(t, string(x), string(y), msgAndArgs...)
}

// sealedWO is v as a work-order tally file authenticated with key.
func sealedWO(t testing.TB, key []byte, v any) []byte {
	t.Helper()
	tb, err := json.Marshal(v)
	require.NoError(t, err)
	b, err := json.Marshal(tallyEnvelope{MAC: hex.EncodeToString(woTallyMAC(key, tb)), Tally: tb})
	require.NoError(t, err)
	return b
}

// TestWOTallyAgreesWithWholeSums: for random histories of the budget
// ledger (reservations of several work orders and sessions; settlements
// ok, cancelled, not called and abandoned; calls without a reservation, a
// second call of a reservation, a reservation settled from another work
// order's entries; refusals and other entries), appended in random
// batches, each work order's tally caught up at random points, the same
// built from nothing (a plane without a key), and the whole sums of the
// work order's entries give the same spend to every work order and every
// session of it.
func TestWOTallyAgreesWithWholeSums(t *testing.T) {
	ctx := context.Background()
	wos := []string{"", "WO-20260101-001", "WO-20260101-002", "WO-20260101-003"}
	sessions := []string{"", "SES-1", "SES-2", "SES-3"}
	providers, subjects := []string{"p", "q"}, []string{"a", "b", "c"}
	for seed := range 24 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 33))
			pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
			dir, l := tallyLedger(t)
			var open, settled []woRes
			n := 0
			fresh := func() woRes {
				n++
				return woRes{rid: fmt.Sprintf("RSV-%016x", n), wo: pick(wos), session: pick(sessions), provider: pick(providers), subject: pick(subjects),
					max: Spend{Calls: 1, Tokens: 100 + r.Int64N(900), MicroUSD: r.Int64N(5000)}}
			}
			check := func(step int, wo string) {
				t.Helper()
				tl := loadWO(t, dir, l, tallyTestKey, wo)
				keyless := loadWO(t, dir, l, nil, wo)
				requireSameWO(t, keyless, tl, "step %d: %s's tally caught up is the one built from nothing", step, wo)
				whole, ws := woWholeSum(t, l, wo), tl.spend()
				require.Equal(t, whole.total(nil), ws.ofWorkOrder(), "step %d: work order %s", step, wo)
				for _, s := range sessions[1:] {
					require.Equal(t, whole.total(func(r *spendRow) bool { return r.session == s }), ws.ofSession(s), "step %d: work order %s, session %s", step, wo, s)
				}
			}
			// Each work order's WO_CREATED before any of its entries, with
			// other entries between: a tally begun from nothing reads from
			// it (the second of one work order's does not count).
			var created []ledger.Draft
			for _, wo := range append(wos[1:], pick(wos[1:])) {
				for range r.IntN(3) {
					created = append(created, ledger.Draft{EventType: "NOTE", Decision: "x", Reason: "before"})
				}
				created = append(created, ledger.Draft{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "a work order"})
			}
			_, err := l.Append(ctx, created)
			require.NoError(t, err)
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
						// reservation's session).
						x := settled[r.IntN(len(settled))]
						ds = append(ds, x.call(StatusOK, 1, 2, 3))
					case k < 17: // settled from another work order's entries
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
				check(step, pick(wos[1:]))
			}
			for _, wo := range wos[1:] {
				check(30, wo)
			}
		})
	}
}

// TestWOTallyNotBelieved: a work order's budget is never summed from a
// tally that does not hold: sums lowered (the MAC kept), a tally sealed
// with another key, one of a larger tree (the ledger rolled back under
// it), another work order's tally or the caps' tally copied over it, one
// of another version, a FIFO or a link in its place: each is recomputed
// from the ledger, and the file replaced by the honest one. An older
// tally of the same work order, restored over the newer, is believed and
// caught up to the same sums.
func TestWOTallyNotBelieved(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	const wo, other = "WO-20260101-001", "WO-20260101-002"
	a := woRes{rid: "RSV-00000000000000a1", wo: wo, session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	b := a
	b.rid = "RSV-00000000000000b2"
	c := a
	c.rid, c.wo = "RSV-00000000000000c3", other
	_, err := l.Append(ctx, []ledger.Draft{a.reserved(), a.call(StatusOK, 10, 20, 30)})
	require.NoError(t, err)
	_, err = os.ReadFile(woTallyFile(dir, wo))
	require.ErrorIs(t, err, os.ErrNotExist)
	loadWO(t, dir, l, tallyTestKey, wo)
	older, err := os.ReadFile(woTallyFile(dir, wo))
	require.NoError(t, err)
	_, err = l.Append(ctx, []ledger.Draft{b.reserved(), c.reserved()})
	require.NoError(t, err)
	truth := loadWO(t, dir, l, tallyTestKey, wo)
	want := Spend{Calls: 2, Tokens: 330, MicroUSD: 930}
	require.Equal(t, want, truth.spend().ofWorkOrder())
	require.Equal(t, want, truth.spend().ofSession("SES-1"))
	honest, err := os.ReadFile(woTallyFile(dir, wo))
	require.NoError(t, err)
	otherTally := loadWO(t, dir, l, tallyTestKey, other)
	require.Equal(t, Spend{Calls: 1, Tokens: 300, MicroUSD: 900}, otherTally.spend().ofWorkOrder())
	otherFile, err := os.ReadFile(woTallyFile(dir, other))
	require.NoError(t, err)

	var env tallyEnvelope
	require.NoError(t, json.Unmarshal(honest, &env))
	var fields map[string]any
	require.NoError(t, json.Unmarshal(env.Tally, &fields))
	fields["settled"], fields["sessions"], fields["open"] = Spend{}, map[string]any{}, map[string]any{}
	zeroed, err := json.Marshal(fields)
	require.NoError(t, err)
	lowered, err := json.Marshal(tallyEnvelope{MAC: env.MAC, Tally: zeroed})
	require.NoError(t, err)
	low := *truth
	low.Settled, low.Sessions, low.Pending = Spend{}, map[string]Spend{}, map[string]*openRow{}
	bigger := low
	bigger.Size = truth.Size + 3
	v0 := low
	v0.Version = 0
	renamed := low
	renamed.WorkOrder = other
	caps := newTally()
	caps.Size, caps.Root = truth.Size, truth.Root

	for name, content := range map[string][]byte{
		"lowered in place":                       lowered,
		"another key's":                          sealedWO(t, []byte("another plane's key, 32 bytes..."), &low),
		"a larger tree's (a ledger rolled back)": sealedWO(t, tallyTestKey, &bigger),
		"another version's":                      sealedWO(t, tallyTestKey, &v0),
		"another work order's, copied over":      otherFile,
		"another work order's, its name changed": sealedWO(t, tallyTestKey, &renamed),
		"the caps' tally":                        sealed(t, tallyTestKey, caps),
		"sealed by the caps' tally's MAC":        sealed(t, tallyTestKey, &low),
		"not JSON":                               []byte("{"),
	} {
		require.NoError(t, os.WriteFile(woTallyFile(dir, wo), content, 0o644))
		got := loadWO(t, dir, l, tallyTestKey, wo)
		requireSameWO(t, truth, got, "%s: recomputed from the ledger", name)
		require.Equal(t, want, got.spend().ofWorkOrder(), name)
		b, err := os.ReadFile(woTallyFile(dir, wo))
		require.NoError(t, err)
		require.Equal(t, string(honest), string(b), "%s: replaced by the ledger's", name)
	}

	// A link to the other work order's (honest) tally is not followed,
	// and is replaced, not written through.
	require.NoError(t, os.Remove(woTallyFile(dir, wo)))
	require.NoError(t, os.Symlink(woTallyFile(dir, other), woTallyFile(dir, wo)))
	requireSameWO(t, truth, loadWO(t, dir, l, tallyTestKey, wo))
	fi, err := os.Lstat(woTallyFile(dir, wo))
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular(), "the link replaced")
	b2, err := os.ReadFile(woTallyFile(dir, other))
	require.NoError(t, err)
	require.Equal(t, string(otherFile), string(b2), "the other work order's tally untouched")

	// An older tally of the same work order is caught up: the same sums.
	require.NoError(t, os.WriteFile(woTallyFile(dir, wo), older, 0o644))
	requireSameWO(t, truth, loadWO(t, dir, l, tallyTestKey, wo))

	// An id that is not a work order's never names a file.
	st, err := l.State(ctx)
	require.NoError(t, err)
	_, err = loadWOTally(ctx, dir, l, st, tallyTestKey, "../../etc/x", nil)
	require.Error(t, err)
}

// oneReservation is a budget ledger holding one open reservation of
// work order WO-20260101-001.
func oneReservation(t *testing.T) (string, *ledger.Ledger, woRes) {
	t.Helper()
	dir, l := tallyLedger(t)
	a := woRes{rid: "RSV-00000000000000a1", wo: "WO-20260101-001", session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	_, err := l.Append(context.Background(), []ledger.Draft{a.reserved()})
	require.NoError(t, err)
	return dir, l, a
}

// TestWOTallyFIFONotOpened: a FIFO where a work order's tally belongs
// does not block the call (it holds the budget lock): it is not read, and
// the sums are the ledger's.
func TestWOTallyFIFONotOpened(t *testing.T) {
	ctx := context.Background()
	dir, l, a := oneReservation(t)
	wo := a.wo
	require.NoError(t, syscall.Mkfifo(woTallyFile(dir, wo), 0o644))
	done := make(chan *woTally, 1)
	go func() {
		st, _ := l.State(ctx)
		tl, _ := loadWOTally(ctx, dir, l, st, tallyTestKey, wo, nil)
		done <- tl
	}()
	tl := <-done
	require.NotNil(t, tl)
	require.Equal(t, a.max, tl.spend().ofWorkOrder())
}

// TestReserveSumsWorkOrderTally: reserve sums a work order's budget and
// its session's through the work order's tally, to what the whole sums of
// its entries say (settled calls at their charge, an open reservation in
// full, another work order's calls not at all, this batch's reservation
// for the call after it), with a key (the tally written) and without one
// (no file). The call that would pass the budget is refused.
func TestReserveSumsWorkOrderTally(t *testing.T) {
	for _, key := range [][]byte{nil, tallyTestKey} {
		t.Run(fmt.Sprintf("key=%t", key != nil), func(t *testing.T) {
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
			whole := woWholeSum(t, l, x1.wo)
			wantWO, wantSession := whole.total(nil), whole.total(func(r *spendRow) bool { return r.session == "SES-1" })
			require.Equal(t, Spend{Calls: 3, Tokens: 30 + 300 + 3, MicroUSD: 30 + 900 + 3}, wantWO)
			require.Equal(t, Spend{Calls: 2, Tokens: 330, MicroUSD: 930}, wantSession)

			saved := woTallyKeyOf
			woTallyKeyOf = func(plane.Tier) ([]byte, error) { return key, nil }
			t.Cleanup(func() { woTallyKeyOf = saved })
			tier := plane.Tier{}
			p1, p2 := prep(), prep()
			got, err := g.reserve(ctx, dir, tier, l, []*prepared{p1, p2}, nil)
			var be *BudgetError
			require.ErrorAs(t, err, &be)
			require.Equal(t, []*prepared{p1}, got, "the first call fits, the second would pass llm_calls")
			require.Equal(t, "work_order", be.Budget.Scope)
			require.Equal(t, Budget{Scope: "work_order", Key: x1.wo, Limit: Limit{Calls: &calls, Tokens: &tokens, MicroUSD: ptr(10_000_000)}, Spent: wantWO}, p1.budgets[0])
			require.Equal(t, wantSession, p1.budgets[1].Spent)
			require.Equal(t, wantWO.add(p1.max), be.Budget.Spent, "the batch's reservation counts for the call after it")
			_, err = os.Lstat(woTallyFile(dir, x1.wo))
			if key == nil {
				require.ErrorIs(t, err, os.ErrNotExist, "no tally without a key")
				return
			}
			require.NoError(t, err)
			// The next reserve folds the batch's entries into the tally.
			p3 := prep()
			_, err = g.reserve(ctx, dir, tier, l, []*prepared{p3}, nil)
			require.ErrorAs(t, err, &be)
			require.Equal(t, woWholeSum(t, l, x1.wo).total(nil), be.Budget.Spent)
			entries, err := os.ReadDir(filepath.Join(dir, "ledger"))
			require.NoError(t, err)
			for _, e := range entries {
				require.NotContains(t, e.Name(), ".tmp-", "no temporary file left")
			}
		})
	}
}

// BenchmarkWorkOrderSum is a work order's budget summed under the lock,
// at 5,000 and 20,000 prior entries of the work order: through its tally
// (read, caught up with the last call's two entries, written back)
// against the whole sum of its entries through the index (what every call
// did before, and a plane without a checkpoint key still does).
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
				loadWO(b, dir, l, tallyTestKey, wo)
				i := 0
				for b.Loop() {
					release, err := holdLedger(ctx, dir, l)
					if err != nil {
						b.Fatal(err)
					}
					var s Spend
					if mode == "tally" {
						s = loadWO(b, dir, l, tallyTestKey, wo).spend().ofWorkOrder()
					} else {
						s = woWholeSum(b, l, wo).total(nil)
					}
					if s.Calls == 0 {
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

// FuzzWOTally: whatever a work order's tally file holds, a call's sums are
// its work order's entries in the ledger (a tally the key did not seal is
// never believed).
func FuzzWOTally(f *testing.F) {
	ctx := context.Background()
	dir, l := tallyLedger(f)
	const wo = "WO-20260101-001"
	a := woRes{rid: "RSV-00000000000000a1", wo: wo, session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	b := a
	b.rid = "RSV-00000000000000b2"
	_, err := l.Append(ctx, []ledger.Draft{a.reserved(), a.call(StatusOK, 10, 20, 30), b.reserved()})
	require.NoError(f, err)
	truth := loadWO(f, dir, l, tallyTestKey, wo)
	seed, err := os.ReadFile(woTallyFile(dir, wo))
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`{"mac":"","tally":{"version":1,"work_order_id":"WO-20260101-001","size":0,"root":"","settled":{},"sessions":{},"open":{}}}`))
	f.Add([]byte(`{"version":1,"size":1,"open":{"RSV-1":null}}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		require.NoError(t, os.WriteFile(woTallyFile(dir, wo), content, 0o644))
		requireSameWO(t, truth, loadWO(t, dir, l, tallyTestKey, wo), "a tally the key did not seal was believed")
	})
}

// TestSealedTooLargeNotRead: a tally file larger than maxSealed (a sparse
// file of gigabytes planted where a work order's tally belongs) is not
// read into memory while the budget lock is held: not believed, and the
// sums are the ledger's.
func TestSealedTooLargeNotRead(t *testing.T) {
	dir, l, a := oneReservation(t)
	wo := a.wo
	truth := loadWO(t, dir, l, tallyTestKey, wo)
	honest, err := os.ReadFile(woTallyFile(dir, wo))
	require.NoError(t, err)
	// The honest tally, then 8 GiB of holes after it.
	f, err := os.OpenFile(woTallyFile(dir, wo), os.O_WRONLY, 0)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(1<<33))
	require.NoError(t, f.Close())
	require.Nil(t, readSealed(woTallyFile(dir, wo), tallyTestKey, woTallyMAC), "not read")
	requireSameWO(t, truth, loadWO(t, dir, l, tallyTestKey, wo))
	b, err := os.ReadFile(woTallyFile(dir, wo))
	require.NoError(t, err)
	require.Equal(t, string(honest), string(b), "replaced by the ledger's")
}

// TestRecheckFindsHiddenRead: a reservation records the work order's sums
// it was reserved against (wo_spent). recover's recheck of the work-order
// tallies names one recorded below what the work order's entries before
// it sum to (a read hidden from that call, its lie maybe carried by the
// tally since), and not one recorded at the ledger's sums, as every
// reservation the gateway makes is.
func TestRecheckFindsHiddenRead(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	withWOKey(t, tallyTestKey)
	const wo = "WO-20260101-001"
	g := &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limits: &config.Limits{}, limitsLoaded: true}
	calls, tokens, usd := int64(10), int64(1_000_000), json.Number("10")
	w := &workorder.WorkOrder{ID: wo, Budget: workorder.Budget{LLMCalls: &calls, LLMTokens: &tokens, LLMCostUSD: &usd}}
	reserveOne := func() *prepared {
		p := &prepared{call: &Call{Subject: "s", WorkOrderID: wo, SessionID: "SES-1"}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
			approval: &workorder.Approval{ID: wo, WorkOrder: w}}
		got, err := g.reserve(ctx, dir, plane.Tier{}, l, []*prepared{p, p}, nil)
		require.NoError(t, err)
		require.Len(t, got, 2)
		return p
	}
	reserveOne()
	reserveOne()
	var recorded []Spend
	require.NoError(t, l.Find(ctx, ledger.Query{EventTypes: []string{EventReserved}, Subject: wo}, func(e *ledger.Entry) bool {
		s, ok := spendOf(e.Metadata["wo_spent"])
		require.True(t, ok, "a reservation records the sums it was made against")
		recorded = append(recorded, s)
		return true
	}))
	require.Equal(t, []Spend{{}, {Calls: 1, Tokens: 100, MicroUSD: 10}, {Calls: 2, Tokens: 200, MicroUSD: 20}, {Calls: 3, Tokens: 300, MicroUSD: 30}}, recorded)
	var warnings []string
	warnf := func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) }
	found, err := recheckWOTallies(ctx, dir, l, plane.Tier{}, warnf)
	require.NoError(t, err)
	require.Empty(t, found)
	require.Empty(t, warnings, "the gateway's own reservations were made against the ledger's sums")

	// A reservation made against sums a hidden read lowered.
	x := woRes{rid: "RSV-00000000000000e1", wo: wo, session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10}}
	d := x.reserved()
	d.Metadata["wo_spent"] = Spend{Calls: 1, Tokens: 100, MicroUSD: 10}.fields()
	_, err = l.Append(ctx, []ledger.Draft{d})
	require.NoError(t, err)
	found, err = recheckWOTallies(ctx, dir, l, plane.Tier{}, warnf)
	require.NoError(t, err)
	require.Equal(t, []*HiddenRead{{WorkOrderID: wo, ReservationID: x.rid, ReservedSeq: found[0].ReservedSeq,
		Believed: Spend{Calls: 1, Tokens: 100, MicroUSD: 10}, Ledger: Spend{Calls: 4, Tokens: 400, MicroUSD: 40}}}, found, "in recover's result, not only on stderr")
	require.Len(t, warnings, 1)
	require.Contains(t, warnings[0], "reservation RSV-00000000000000e1")
	require.Contains(t, warnings[0], "believed 1 calls, 100 tokens, 10 micro-USD; the ledger's 4, 400, 40")
}

// TestWOTallyForkNotKept: the files of HO2's ledger replaced for one call
// by a fork of it (the same work order created, none of its calls: lines
// and stored hashes that agree with each other, so the checked read
// passes) seal the fork's lower sums with the fork's tree; once the
// honest files are back, that tree is not the ledger's and the tally is
// recomputed: the work order's spend is the ledger's again. (A one-call
// lie that leaves the stored hashes alone is refused outright: session
// 33's attack tests.)
func TestWOTallyForkNotKept(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	const wo = "WO-20260101-001"
	created := ledger.Draft{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "a work order"}
	a := woRes{rid: "RSV-00000000000000a1", wo: wo, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	b := a
	b.rid = "RSV-00000000000000b2"
	_, err := l.Append(ctx, []ledger.Draft{created, a.reserved(), a.call(StatusOK, 10, 20, 30), b.reserved(), b.call(StatusOK, 1, 2, 3)})
	require.NoError(t, err)
	honest := loadWO(t, dir, l, tallyTestKey, wo).spend().ofWorkOrder()
	require.Equal(t, Spend{Calls: 2, Tokens: 33, MicroUSD: 33}, honest)
	require.NoError(t, l.Close())

	path := filepath.Join(dir, "ledger", "budget.jsonl")
	hashes, _, _ := ledger.SidePaths(path)
	files := []string{path, hashes}
	saved := map[string][]byte{}
	for _, p := range files {
		saved[p], err = os.ReadFile(p)
		require.NoError(t, err)
	}
	forkDir := t.TempDir()
	fork, err := ledger.OpenWriter(filepath.Join(forkDir, "budget.jsonl"), ledger.Options{Actor: "test"})
	require.NoError(t, err)
	_, err = fork.Append(ctx, []ledger.Draft{created, {EventType: "NOTE", Decision: "x", Reason: "y"}})
	require.NoError(t, err)
	require.NoError(t, fork.Close())
	forkHashes, _, _ := ledger.SidePaths(filepath.Join(forkDir, "budget.jsonl"))
	for i, p := range []string{filepath.Join(forkDir, "budget.jsonl"), forkHashes} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(files[i], b, 0o644))
	}
	removeIndex := func() {
		if err := os.Remove(ledger.IndexPath(path)); !os.IsNotExist(err) {
			require.NoError(t, err)
		}
	}
	removeIndex()
	lf, err := ledger.OpenWriter(path, ledger.Options{Actor: "test"})
	require.NoError(t, err)
	require.Equal(t, Spend{}, loadWO(t, dir, lf, tallyTestKey, wo).spend().ofWorkOrder(), "the fork's sums, sealed")
	require.NoError(t, lf.Close())

	for _, p := range files {
		require.NoError(t, os.WriteFile(p, saved[p], 0o644))
	}
	removeIndex()
	lh, err := ledger.OpenWriter(path, ledger.Options{Actor: "test"})
	require.NoError(t, err)
	defer lh.Close()
	require.Equal(t, honest, loadWO(t, dir, lh, tallyTestKey, wo).spend().ofWorkOrder(), "the honest ledger back: its sums, not the fork's")
}

// BenchmarkWOTallyGap is a work order's tally caught up across the other
// work orders' entries appended since its last call (100, 1,000 and
// 10,000 of them): read checked, every line of the gap hashed into the
// tree (what a call does since session 34), against the index's postings
// of the work order (session 33's catch-up, which an index lie or a
// one-call line edit could make miss entries).
func BenchmarkWOTallyGap(b *testing.B) {
	ctx := context.Background()
	const wo = "WO-20260101-001"
	for _, gap := range []int{100, 1_000, 10_000} {
		dir, l := tallyLedger(b)
		x := woRes{rid: "RSV-0000000000000001", wo: wo, session: "SES-1", provider: "p", subject: "a", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 90}}
		_, err := l.Append(ctx, []ledger.Draft{{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "w"}, x.reserved(), x.call(StatusOK, 10, 10, 3)})
		require.NoError(b, err)
		loadWO(b, dir, l, tallyTestKey, wo)
		sealed, err := os.ReadFile(woTallyFile(dir, wo))
		require.NoError(b, err)
		for i := 0; i < gap; i += 500 {
			var ds []ledger.Draft
			for j := i; j < min(i+500, gap); j += 2 {
				y := woRes{rid: fmt.Sprintf("RSV-%016x", j+2), wo: fmt.Sprintf("WO-20260101-%03d", 2+j%300), provider: "p", subject: "a", max: x.max}
				ds = append(ds, y.reserved(), y.call(StatusOK, 10, 10, 3))
			}
			_, err := l.Append(ctx, ds)
			require.NoError(b, err)
		}
		st, err := l.State(ctx)
		require.NoError(b, err)
		for _, mode := range []string{"checked", "index"} {
			b.Run(fmt.Sprintf("gap=%d/%s", gap, mode), func(b *testing.B) {
				for b.Loop() {
					require.NoError(b, os.WriteFile(woTallyFile(dir, wo), sealed, 0o600))
					t := readWOTally(dir, wo, tallyTestKey)
					if t == nil || !holdsTree(l, st, t.Size, t.Root) {
						b.Fatal("the sealed tally is not believed")
					}
					if err := t.catchUp(ctx, l, st, mode == "checked", 0); err != nil {
						b.Fatal(err)
					}
					if t.Settled.Calls != 1 {
						b.Fatalf("%d calls", t.Settled.Calls)
					}
				}
			})
		}
	}
}

// TestCreatedNotBelieved: llm-created.json, which says where a work-order
// tally begun from nothing starts reading, is believed only as the
// tallies are. Rewritten to start after the work order's calls, sealed
// with another key, or left unsealed, it is rebuilt from a checked read of
// the whole ledger: the tally begun from nothing holds every call, and
// recover names the file and rewrites it.
func TestCreatedNotBelieved(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	withWOKey(t, tallyTestKey)
	const wo = "WO-20260101-001"
	a := woRes{rid: "RSV-00000000000000a1", wo: wo, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	b := a
	b.rid = "RSV-00000000000000b2"
	_, err := l.Append(ctx, []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "before"},
		{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "a work order"},
		a.reserved(), a.call(StatusOK, 10, 20, 30), b.reserved(), b.call(StatusOK, 1, 2, 3),
		{EventType: "NOTE", Decision: "x", Reason: "after"}})
	require.NoError(t, err)
	honest := loadWO(t, dir, l, tallyTestKey, wo).spend().ofWorkOrder()
	require.Equal(t, int64(2), honest.Calls)
	c := readCreated(dir, tallyTestKey)
	require.NotNil(t, c, "the first call sealed llm-created.json")
	require.Equal(t, int64(1), c.First[wo])

	late := *c
	late.First = map[string]int64{wo: 6}
	for name, forged := range map[string][]byte{
		"sealed with another key": func() []byte {
			tb, err := json.Marshal(late)
			require.NoError(t, err)
			env, err := json.Marshal(tallyEnvelope{MAC: hex.EncodeToString(createdMAC([]byte("another key, 32 bytes long......"), tb)), Tally: tb})
			require.NoError(t, err)
			return env
		}(),
		"not sealed": func() []byte {
			b, err := json.Marshal(late)
			require.NoError(t, err)
			return b
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(createdFile(dir), forged, 0o644))
			require.NoError(t, os.Remove(woTallyFile(dir, wo)))
			require.Equal(t, honest, loadWO(t, dir, l, tallyTestKey, wo).spend().ofWorkOrder(), "the tally begun from nothing holds every call")
			require.Equal(t, int64(1), readCreated(dir, tallyTestKey).First[wo], "rebuilt")
			require.NoError(t, os.WriteFile(createdFile(dir), forged, 0o644))
			var warnings []string
			_, err := recheckWOTallies(ctx, dir, l, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
			require.NoError(t, err)
			require.Contains(t, strings.Join(warnings, "\n"), "llm-created.json did not match HO2's ledger")
			require.Equal(t, int64(1), readCreated(dir, tallyTestKey).First[wo], "recover rewrote it")
		})
	}
	// What recover wrote agrees with the ledger: a second recover names
	// nothing.
	var warnings []string
	_, err = recheckWOTallies(ctx, dir, l, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
	require.NoError(t, err)
	require.Empty(t, warnings, "what recover wrote agrees with the ledger")
}

// FuzzCreated: whatever llm-created.json holds, a work-order tally begun
// from nothing sums its work order's entries in the ledger (a file the key
// did not seal is never believed, and is rebuilt).
func FuzzCreated(f *testing.F) {
	ctx := context.Background()
	dir, l := tallyLedger(f)
	const wo = "WO-20260101-001"
	a := woRes{rid: "RSV-00000000000000a1", wo: wo, session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	_, err := l.Append(ctx, []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "before"},
		{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "a work order"}, a.reserved(), a.call(StatusOK, 10, 20, 30)})
	require.NoError(f, err)
	truth := loadWO(f, dir, l, tallyTestKey, wo)
	seed, err := os.ReadFile(createdFile(dir))
	require.NoError(f, err)
	f.Add(seed)
	f.Add([]byte(`{"mac":"","tally":{"version":1,"size":0,"root":"","first":{"WO-20260101-001":3}}}`))
	f.Add([]byte(`{"version":1,"size":4,"first":null}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		require.NoError(t, os.WriteFile(createdFile(dir), content, 0o644))
		if err := os.Remove(woTallyFile(dir, wo)); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		requireSameWO(t, truth, loadWO(t, dir, l, tallyTestKey, wo), "a file of first WO_CREATED seqs the key did not seal was believed")
	})
}

// BenchmarkRecoverRecheck is recover's repair of the sums at 20,000 and
// 100,000 entries of HO2's ledger (reservations and calls of 100 work
// orders, each with a tally): the caps' tally rebuilt and every
// work-order tally and llm-created.json recomputed, each from a checked
// read of the whole ledger.
func BenchmarkRecoverRecheck(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{20_000, 100_000} {
		dir, l := tallyLedger(b)
		var created []ledger.Draft
		for w := range 100 {
			created = append(created, ledger.Draft{EventType: workorder.EventCreated, SubmissionID: fmt.Sprintf("WO-20260101-%03d", w+1), Decision: "CREATED", Reason: "w"})
		}
		_, err := l.Append(ctx, created)
		require.NoError(b, err)
		for i := 0; i < n; i += 1000 {
			ds := make([]ledger.Draft, 0, 1000)
			for j := i; j < i+1000; j += 2 {
				x := woRes{rid: fmt.Sprintf("RSV-%016x", j), wo: fmt.Sprintf("WO-20260101-%03d", 1+j/2%100), provider: "p", subject: "a", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 90}}
				ds = append(ds, x.reserved(), x.call(StatusOK, 10, 10, 3))
			}
			_, err := l.Append(ctx, ds)
			require.NoError(b, err)
		}
		for w := range 100 {
			loadWO(b, dir, l, tallyTestKey, fmt.Sprintf("WO-20260101-%03d", w+1))
		}
		withWOKey(b, tallyTestKey)
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := loadTally(ctx, dir, l, tallyTestKey, true, nil); err != nil {
					b.Fatal(err)
				}
				if _, err := recheckWOTallies(ctx, dir, l, plane.Tier{}, func(f string, args ...any) { b.Fatalf(f, args...) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
