package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// Session 33's attacks on the work-order tally (wotally.go).

// withWOKey makes woTallyKeyOf return key for the test.
func withWOKey(t *testing.T, key []byte) {
	saved := woTallyKeyOf
	woTallyKeyOf = func(plane.Tier) ([]byte, error) { return key, nil }
	t.Cleanup(func() { woTallyKeyOf = saved })
}

// TestAttack33RecheckPlantedNonFile: something that is not a regular file
// planted where a work order's tally belongs (a directory, one with a
// file in it, a FIFO, a link to a directory) does not stop recover's
// repair of the tallies (recheckWOTallies), which also settles abandoned
// reservations: the caps' tally, in the same place, is only a warning
// when it cannot be written, and so is a work order's in reserve. Each
// is warned about, and the tallies that can be written are.
func TestAttack33RecheckPlantedNonFile(t *testing.T) {
	ctx := context.Background()
	const wo, good = "WO-20260101-001", "WO-20260101-002"
	for name, plant := range map[string]func(p string) error{
		"an empty directory": func(p string) error { return os.Mkdir(p, 0o755) },
		"a directory with a file": func(p string) error {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(p, "x"), nil, 0o644)
		},
		"a FIFO": func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"a link to a directory": func(p string) error {
			d := filepath.Join(filepath.Dir(p), "elsewhere")
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
			return os.Symlink(d, p)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir, l := tallyLedger(t)
			withWOKey(t, tallyTestKey)
			a := woRes{rid: "RSV-00000000000000a1", wo: wo, session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
			b := a
			b.rid, b.wo = "RSV-00000000000000b2", good
			_, err := l.Append(ctx, []ledger.Draft{a.reserved(), b.reserved()})
			require.NoError(t, err)
			loadWO(t, dir, l, tallyTestKey, good)
			require.NoError(t, plant(woTallyFile(dir, wo)))
			var warnings []string
			_, err = recheckWOTallies(ctx, dir, l, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
			require.NoError(t, err, "recover's repair stopped by %s where a tally belongs", name)
			require.NotEmpty(t, warnings, "the planted %s is named", name)
			// The other work order's tally was rechecked and is still believed.
			require.NotNil(t, readWOTally(dir, good, tallyTestKey))
		})
	}
}

// TestAttack33ReserveRaceTallyReplaced: eight gateways (each its own
// store, its own lock description: as eight processes) reserve one call
// each under a work order whose budget allows five, while another
// replaces the work order's tally again and again with an older sealed
// copy, the other work order's, the caps' tally, or removes it, and
// recover's recheck rewrites them all again and again. Exactly five are
// reserved, and the tally left agrees with the ledger.
func TestAttack33ReserveRaceTallyReplaced(t *testing.T) {
	ctx := context.Background()
	dir, l0 := tallyLedger(t)
	withWOKey(t, tallyTestKey)
	const wo, other = "WO-20260101-001", "WO-20260101-002"
	o := woRes{rid: "RSV-00000000000000f1", wo: other, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10}}
	_, err := l0.Append(ctx, []ledger.Draft{o.reserved()})
	require.NoError(t, err)
	loadWO(t, dir, l0, tallyTestKey, wo)
	older, err := os.ReadFile(woTallyFile(dir, wo))
	require.NoError(t, err)
	loadWO(t, dir, l0, tallyTestKey, other)
	otherFile, err := os.ReadFile(woTallyFile(dir, other))
	require.NoError(t, err)
	caps := newTally()
	capsFile := sealed(t, tallyTestKey, caps)

	calls := int64(5)
	w := &workorder.WorkOrder{ID: wo, Budget: workorder.Budget{LLMCalls: &calls, LLMTokens: ptr(1_000_000), LLMCostUSD: func() *json.Number { n := json.Number("10"); return &n }()}}
	g := &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limitsLoaded: true}
	stop := make(chan struct{})
	var tamper sync.WaitGroup
	tamper.Add(1)
	go func() {
		defer tamper.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := woTallyFile(dir, wo)
			switch i % 4 {
			case 0:
				os.Remove(p)
			case 1:
				os.WriteFile(p+".x", older, 0o644)
				os.Rename(p+".x", p)
			case 2:
				os.WriteFile(p+".x", otherFile, 0o644)
				os.Rename(p+".x", p)
			default:
				os.WriteFile(p+".x", capsFile, 0o644)
				os.Rename(p+".x", p)
			}
		}
	}()
	// And recover's recheck of the tallies, beside them, under the lock
	// as Recover holds it.
	tamper.Add(1)
	go func() {
		defer tamper.Done()
		l, err := ledger.OpenWriter(filepath.Join(dir, "ledger", "budget.jsonl"), ledger.Options{Actor: "recover"})
		if err != nil {
			t.Error(err)
			return
		}
		defer l.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			release, err := holdLedger(ctx, dir, l)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := recheckWOTallies(ctx, dir, l, plane.Tier{}, func(string, ...any) {}); err != nil {
				t.Error(err)
			}
			release()
			// Not at once again: the lock is polled, not queued, and a
			// holder that takes it back at once starves the others
			// (LOCK_TIMEOUT after 10 s).
			time.Sleep(3 * time.Millisecond)
		}
	}()
	var reserved atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := ledger.OpenWriter(filepath.Join(dir, "ledger", "budget.jsonl"), ledger.Options{Actor: fmt.Sprint("g", i)})
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Close()
			p := &prepared{call: &Call{Subject: "s", WorkOrderID: wo}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
				approval: &workorder.Approval{ID: wo, WorkOrder: w}}
			got, err := g.reserve(ctx, dir, plane.Tier{}, l, []*prepared{p}, nil)
			var be *BudgetError
			if err != nil && !errorAs(err, &be) {
				t.Error(err)
			}
			reserved.Add(int64(len(got)))
		}()
	}
	wg.Wait()
	close(stop)
	tamper.Wait()
	require.Equal(t, int64(5), reserved.Load(), "exactly the budget's five calls reserved")
	require.Equal(t, Spend{Calls: 5, Tokens: 500, MicroUSD: 50}, woWholeSum(t, l0, wo).total(nil))
	var warnings []string
	hidden, err := recheckWOTallies(ctx, dir, l0, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
	require.NoError(t, err)
	require.Empty(t, hidden, "every reservation of the race made against the ledger's sums")
	require.Equal(t, Spend{Calls: 5, Tokens: 500, MicroUSD: 50}, loadWO(t, dir, l0, tallyTestKey, wo).spend().ofWorkOrder())
}

func errorAs(err error, be **BudgetError) bool {
	e, ok := err.(*BudgetError)
	if ok {
		*be = e
	}
	return ok
}

// failingAppend is a budget ledger whose appends fail: a caller killed
// after reserve wrote the work order's tally and before its reservation
// was appended.
type failingAppend struct{ *ledger.Ledger }

func (failingAppend) Append(context.Context, []ledger.Draft) ([]ledger.Entry, error) {
	return nil, fmt.Errorf("killed")
}

// TestAttack33TallyNeverAhead: the tally reserve writes is of the ledger
// as it was before the batch's reservations (st, read under the budget
// lock): a caller killed between that write and the append leaves a
// tally of the ledger as it is, never one ahead of it, and the next
// call's sums are the whole sums of the work order's entries. Two work
// orders in one batch each get their own.
func TestAttack33TallyNeverAhead(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	withWOKey(t, tallyTestKey)
	const wo, wo2 = "WO-20260101-001", "WO-20260101-002"
	x := woRes{rid: "RSV-00000000000000a1", wo: wo, session: "SES-1", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	_, err := l.Append(ctx, []ledger.Draft{x.reserved()})
	require.NoError(t, err)
	calls := int64(3)
	w := func(id string) *workorder.WorkOrder {
		return &workorder.WorkOrder{ID: id, Budget: workorder.Budget{LLMCalls: &calls, LLMTokens: ptr(1_000_000), LLMCostUSD: func() *json.Number { n := json.Number("10"); return &n }()}}
	}
	g := &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limitsLoaded: true}
	prep := func(id string) *prepared {
		return &prepared{call: &Call{Subject: "s", WorkOrderID: id}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
			approval: &workorder.Approval{ID: id, WorkOrder: w(id)}}
	}
	before, err := l.State(ctx)
	require.NoError(t, err)
	_, err = g.reserve(ctx, dir, plane.Tier{}, failingAppend{l}, []*prepared{prep(wo), prep(wo2)}, nil)
	require.ErrorContains(t, err, "killed")
	for _, id := range []string{wo, wo2} {
		tl := readWOTally(dir, id, tallyTestKey)
		require.NotNil(t, tl, id)
		require.Equal(t, before.Size, tl.Size, "%s's tally is of the ledger before the batch", id)
	}
	p1, p2 := prep(wo), prep(wo2)
	got, err := g.reserve(ctx, dir, plane.Tier{}, l, []*prepared{p1, p2}, nil)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, woWholeSum(t, l, wo).total(nil), p1.max.add(x.max))
	require.Equal(t, x.max, p1.budgets[0].Spent)
	require.Equal(t, Spend{}, p2.budgets[0].Spent)
	for _, id := range []string{wo, wo2} {
		require.Equal(t, woWholeSum(t, l, id).total(nil), loadWO(t, dir, l, tallyTestKey, id).spend().ofWorkOrder(), id)
	}
}
