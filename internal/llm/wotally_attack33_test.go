package llm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
func withWOKey(t testing.TB, key []byte) {
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

// hideSubjectPostings zeroes the bucket head of work order wo's subject
// key in the budget ledger's index (dir/ledger/budget.idx): what a
// process that can write the plane's files (not the owner's key
// directory) can do, as the bucket table carries no checksum. The
// postings of the subject among the entries the index covers are no
// longer found; nothing else about the index changes, and a reader still
// uses it.
func hideSubjectPostings(t *testing.T, dir, wo string) {
	t.Helper()
	hidePostings(t, dir, "s\x00"+wo)
}

// hidePostings zeroes the bucket head of the index key whose hashed text
// is k ("s\x00"+subject, "t\x00"+event type).
func hidePostings(t *testing.T, dir, k string) {
	t.Helper()
	p := filepath.Join(dir, "ledger", "budget.idx")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	var h [128]byte
	_, err = f.ReadAt(h[:], 0)
	require.NoError(t, err)
	require.Equal(t, "CPIDX4\n\x00", string(h[:8]))
	buckets := binary.LittleEndian.Uint64(h[32:])
	key := uint64(14695981039346656037)
	for _, c := range []byte(k) {
		key ^= uint64(c)
		key *= 1099511628211
	}
	var zero [8]byte
	_, err = f.WriteAt(zero[:], 128+int64(key&(buckets-1))*8)
	require.NoError(t, err)
}

// TestAttack33IndexLieSealedInTally: the work-order tally folds the
// entries appended since its Size through the index (Find by the work
// order's id from Size). An index edited to hide the work order's
// postings (hideSubjectPostings) during one call makes that call's
// catch-up miss its spend, and the tally it seals (MAC and all) says so.
// Once the index is removed (the next writer rebuilds it from the ledger)
// the ledger and its index verify clean and G6 has nothing to find, but
// every later call sums from the sealed, lowered tally: the budget's
// spend is not what the ledger holds, and a call the budget does not
// allow is reserved. Before the tally, a hidden posting under-counted
// only while the edited index stayed (and verify, G6, found it).
//
// Without a key (no tally: the whole sums at every call) the fourth call
// is refused. With one it failed at a53acc5 (session 33); it holds since
// session 34, whose catch-up reads every line since the tally's size
// checked (ledger.FindChecked), not the index.
func TestAttack33IndexLieSealedInTally(t *testing.T) {
	for _, key := range [][]byte{nil, tallyTestKey} {
		t.Run(fmt.Sprintf("key=%t", key != nil), func(t *testing.T) { indexLieSealedInTally(t, key) })
	}
}

// threeCalls is the plane of the sealed-lie attacks: a budget ledger in
// dir, one work order whose budget allows three calls, and a gateway.
type threeCalls struct {
	dir, path string
	g         *Gateway
	w         *workorder.WorkOrder
}

const threeCallsWO = "WO-20260101-001"

func newThreeCalls(t *testing.T, key []byte) *threeCalls {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
	withWOKey(t, key)
	calls := int64(3)
	return &threeCalls{dir: dir, path: filepath.Join(dir, "ledger", "budget.jsonl"),
		g: &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limitsLoaded: true},
		w: &workorder.WorkOrder{ID: threeCallsWO, Budget: workorder.Budget{LLMCalls: &calls, LLMTokens: ptr(1_000_000), LLMCostUSD: func() *json.Number { n := json.Number("10"); return &n }()}}}
}

// open opens the budget ledger as a gateway process does.
func (c *threeCalls) open(t *testing.T) *ledger.Ledger {
	l, err := ledger.OpenWriter(c.path, ledger.Options{Actor: "test"})
	require.NoError(t, err)
	return l
}

// prep is one call of the work order, prepared.
func (c *threeCalls) prep() *prepared {
	return &prepared{call: &Call{Subject: "s", WorkOrderID: threeCallsWO}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
		approval: &workorder.Approval{ID: threeCallsWO, WorkOrder: c.w}}
}

// call makes one call, reserved and settled, as a gateway process does.
func (c *threeCalls) call(t *testing.T, l *ledger.Ledger) error {
	ctx := context.Background()
	p := c.prep()
	if _, err := c.g.reserve(ctx, c.dir, plane.Tier{}, l, []*prepared{p}, nil); err != nil {
		return err
	}
	x := woRes{rid: p.rid, wo: threeCallsWO, provider: "p", subject: "s", max: p.max}
	_, err := l.Append(ctx, []ledger.Draft{x.call(StatusOK, 10, 10, 5)})
	return err
}

// twoCalls makes two calls, each its own gateway process's.
func (c *threeCalls) twoCalls(t *testing.T) {
	for i := range 2 {
		l := c.open(t)
		require.NoError(t, c.call(t, l), "call %d", i)
		require.NoError(t, l.Close())
	}
}

func indexLieSealedInTally(t *testing.T, key []byte) {
	ctx := context.Background()
	c := newThreeCalls(t, key)
	dir, wo, g, prep := c.dir, threeCallsWO, c.g, c.prep
	open := func() *ledger.Ledger { return c.open(t) }
	call := func(l *ledger.Ledger) error { return c.call(t, l) }
	c.twoCalls(t)
	// The third call: its process's catch-up reads an index that hides
	// the work order's postings.
	hideSubjectPostings(t, dir, wo)
	l := open()
	require.NoError(t, call(l), "the third call fits the budget of three")
	require.NoError(t, l.Close())
	// The edit is undone: the index removed, rebuilt by the next writer.
	require.NoError(t, os.Remove(filepath.Join(dir, "ledger", "budget.idx")))
	l = open()
	defer l.Close()
	_, err := l.Append(ctx, []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "any writer's entry"}})
	require.NoError(t, err)
	rep, err := ledger.Verify(ctx, l, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, "the ledger and its rebuilt index verify: %v", rep.Issues)
	require.Equal(t, Spend{Calls: 3, Tokens: 60, MicroUSD: 15}, woWholeSum(t, l, wo).total(nil), "the ledger holds three calls")

	// A fourth call would pass llm_calls = 3.
	p := prep()
	got, err := g.reserve(ctx, dir, plane.Tier{}, l, []*prepared{p}, nil)
	var be *BudgetError
	require.ErrorAs(t, err, &be, "a fourth call past llm_calls 3 was reserved (%d reserved): the tally sealed a catch-up the index lied to", len(got))
}

// TestAttack33IndexLieSealedInCapsTally is the same attack on the caps'
// tally (session 32's, llm-tally.json), which catches up by the
// LLM_RESERVED and LLM_CALL event types' keys from its Size: the buckets
// of those keys hidden for one catch-up, the tally seals a plane's spend
// without the calls since, and after the index is rebuilt the caps are
// summed from it. Failed at a53acc5 (the same bug, older than session
// 33); holds since session 34.
func TestAttack33IndexLieSealedInCapsTally(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	loadCaps := func() *tally {
		tl, _, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
		require.NoError(t, err)
		return tl
	}
	loadCaps()
	_, err := l.Append(ctx, []ledger.Draft{reservedDraft("RSV-00000000000000a1", "p", "s", 300, 900), callDraft("RSV-00000000000000a1", StatusOK, "p", "s", 10, 20, 700),
		reservedDraft("RSV-00000000000000a2", "p", "s", 300, 900)})
	require.NoError(t, err)
	hidePostings(t, dir, "t\x00"+EventReserved)
	hidePostings(t, dir, "t\x00"+EventCall)
	loadCaps()
	require.NoError(t, os.Remove(filepath.Join(dir, "ledger", "budget.idx")))
	_, err = l.Append(ctx, []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "any writer's entry"}})
	require.NoError(t, err)
	rep, err := ledger.Verify(ctx, l, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%v", rep.Issues)
	require.Equal(t, wholeSum(t, l).total(nil), loadCaps().spend().ofPlane(), "the plane's spend is the ledger's")
}

// TestAttack33LedgerEditSealedInTally is TestAttack33IndexLieSealedInTally
// without touching the index: the work order's LLM_RESERVED and LLM_CALL
// lines in HO2's ledger edited in place for one call (their event types
// renamed, same length), then put back byte for byte. The index's check
// of a posting (the line re-hashed against X.tlog) fails, and Find falls
// back to a scan, which parses lines without checking them against X.tlog:
// the edited entries are not selected, the catch-up misses them, and the
// tally seals it. The ledger put back verifies, and the next call sums
// from the lowered tally. Without a key the next call's whole sums are
// the ledger's. With a key it failed at a53acc5 (session 33). Since
// session 34 the catch-up reads the edited lines checked and the call is
// refused (LEDGER_INVALID); with the files put back, the sums are the
// ledger's.
func TestAttack33LedgerEditSealedInTally(t *testing.T) {
	for _, key := range [][]byte{nil, tallyTestKey} {
		t.Run(fmt.Sprintf("key=%t", key != nil), func(t *testing.T) {
			ctx := context.Background()
			c := newThreeCalls(t, key)
			dir, path, wo, g := c.dir, c.path, threeCallsWO, c.g
			open := func() *ledger.Ledger { return c.open(t) }
			call := func(l *ledger.Ledger) error { return c.call(t, l) }
			c.twoCalls(t)
			// Any writer's entry last (a writer checks the last line's
			// hash when it opens).
			l := open()
			_, err := l.Append(ctx, []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "any writer's entry"}})
			require.NoError(t, err)
			require.NoError(t, l.Close())
			honest, err := os.ReadFile(path)
			require.NoError(t, err)
			edited := []byte(strings.ReplaceAll(strings.ReplaceAll(string(honest), `"LLM_RESERVED"`, `"LLM_RESERVEX"`), `"LLM_CALL"`, `"LLM_CALX"`))
			require.NoError(t, os.WriteFile(path, edited, 0o644))
			l = open()
			err = call(l)
			require.NoError(t, l.Close())
			if key != nil {
				// The tally's catch-up reads every line since its size,
				// checked: an edited line is refused, never folded.
				var le *ledger.Error
				require.ErrorAs(t, err, &le, "a call over an edited ledger is refused")
				require.Equal(t, "LEDGER_INVALID", le.Code())
			} else {
				require.NoError(t, err, "the third call fits the budget of three")
			}
			// Put back: the honest bytes, and the third call's own lines.
			now, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, append(honest, now[len(honest):]...), 0o644))
			l = open()
			defer l.Close()
			rep, err := ledger.Verify(ctx, l, ledger.VerifyOptions{})
			require.NoError(t, err)
			require.True(t, rep.Valid, "the ledger put back verifies: %v", rep.Issues)
			require.Equal(t, map[bool]int64{true: 2, false: 3}[key != nil], woWholeSum(t, l, wo).total(nil).Calls, "the calls the ledger holds")
			p := c.prep()
			got, err := g.reserve(ctx, dir, plane.Tier{}, l, []*prepared{p}, nil)
			if key != nil {
				// Two calls in the ledger: the third fits, and the sums
				// it was reserved against are the ledger's.
				require.NoError(t, err)
				require.Len(t, got, 1)
				require.Equal(t, woWholeSum(t, l, wo).total(nil), loadWO(t, dir, l, key, wo).spend().ofWorkOrder())
				return
			}
			var be *BudgetError
			require.ErrorAs(t, err, &be, "a fourth call past llm_calls 3 was reserved (%d reserved)", len(got))
		})
	}
}
