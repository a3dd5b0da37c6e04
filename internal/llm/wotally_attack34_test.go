package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
)

// Session 34's attacks on the tallies' checked reads (ledger.FindChecked,
// createdSeq, recheckWOTallies).

// budgetPlane is a plane directory with HO2's ledger (the budget ledger)
// and a gateway whose work order wo allows calls LLM calls.
type budgetPlane struct {
	t    *testing.T
	dir  string
	path string
	wo   string
	w    *workorder.WorkOrder
	g    *Gateway
}

func newBudgetPlane(t *testing.T, calls int64) *budgetPlane {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
	const wo = "WO-20260101-001"
	usd := json.Number("10")
	w := &workorder.WorkOrder{ID: wo, Budget: workorder.Budget{LLMCalls: &calls, LLMTokens: ptr(1_000_000), LLMCostUSD: &usd}}
	return &budgetPlane{t: t, dir: dir, path: filepath.Join(dir, "ledger", "budget.jsonl"), wo: wo, w: w,
		g: &Gateway{providers: &config.ProvidersDoc{}, loaded: true, limitsLoaded: true}}
}

func (b *budgetPlane) open() *ledger.Ledger {
	l, err := ledger.OpenWriter(b.path, ledger.Options{Actor: "test"})
	require.NoError(b.t, err)
	return l
}

// append appends drafts in a writer of its own (any process that can
// write the plane's files can append a well-formed entry: entries carry
// no MAC).
func (b *budgetPlane) append(ds ...ledger.Draft) {
	l := b.open()
	defer l.Close()
	_, err := l.Append(context.Background(), ds)
	require.NoError(b.t, err)
}

func (b *budgetPlane) created() ledger.Draft {
	return ledger.Draft{EventType: workorder.EventCreated, SubmissionID: b.wo, Decision: "CREATED", Reason: "a work order",
		Metadata: map[string]any{"wo_id": b.wo}}
}

// call reserves one call of the work order in a gateway process of its
// own and, when reserved, settles it.
func (b *budgetPlane) call() error { return b.callWith(nil) }

// callWith is call, with before run after the gateway opened the ledger.
func (b *budgetPlane) callWith(before func()) error {
	ctx := context.Background()
	l := b.open()
	defer l.Close()
	if before != nil {
		before()
	}
	p := &prepared{call: &Call{Subject: "s", WorkOrderID: b.wo}, max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10},
		approval: &workorder.Approval{ID: b.wo, WorkOrder: b.w}}
	if _, err := b.g.reserve(ctx, b.dir, plane.Tier{}, l, []*prepared{p}, nil); err != nil {
		return err
	}
	x := woRes{rid: p.rid, wo: b.wo, provider: "p", subject: "s", max: p.max}
	_, err := l.Append(ctx, []ledger.Draft{x.call(StatusOK, 10, 10, 5)})
	return err
}

func (b *budgetPlane) requireRefused(err error, msgAndArgs ...any) {
	b.t.Helper()
	var be *BudgetError
	require.ErrorAs(b.t, err, &be, msgAndArgs...)
}

// verifyClean: the ledger (its index rebuilt by a writer's append)
// verifies, and holds calls calls of the work order.
func (b *budgetPlane) verifyClean(calls int64) {
	b.t.Helper()
	if err := os.Remove(ledger.IndexPath(b.path)); err != nil && !os.IsNotExist(err) {
		require.NoError(b.t, err)
	}
	b.append(ledger.Draft{EventType: "NOTE", Decision: "x", Reason: "any writer's entry"})
	l := b.open()
	defer l.Close()
	rep, err := ledger.Verify(context.Background(), l, ledger.VerifyOptions{})
	require.NoError(b.t, err)
	require.True(b.t, rep.Valid, "the ledger and its rebuilt index verify: %v", rep.Issues)
	require.Equal(b.t, calls, woWholeSum(b.t, l, b.wo).total(nil).Calls, "the ledger holds the work order's calls")
}

// TestAttack34CreatedHiddenSecondCreated (hide=index, hide=line): a
// work-order tally begun from nothing (its file removed: anyone who can
// write the plane's files can) read, at first, from the seq a lookup
// found (Find by the work order's WO_CREATED), and the checked read then
// only checked that the line there was one of the work order's
// WO_CREATED, not that it was the first. The index's chain of
// (WO_CREATED, work order) emptied (its bucket head zeroed: the table has
// no checksum), and one more WO_CREATED of the work order appended (a
// well-formed entry: entries carry no MAC, and the next append signs a
// checkpoint over it), made the tally begin after the work order's calls:
// it sealed none of them, with the ledger's own root, and calls past
// llm_calls were reserved after the index was put back. hide=line did it
// without touching the index: the first WO_CREATED's line renamed in
// place for the one call (its posting's check fails, Find scans past it
// unchecked), then put back byte for byte.
//
// Both FAILED at f5f7013. Since, a tally begun from nothing reads from
// the first WO_CREATED that checked reads found (llm-created.json,
// created.go): hide=index changes nothing, and hide=line is refused
// (LEDGER_INVALID: the renamed line is read, checked) while it is in
// place. The budget holds throughout, and recover finds no reservation
// made against lowered sums.
func TestAttack34CreatedHiddenSecondCreated(t *testing.T) {
	for _, hide := range []string{"none", "index", "line"} {
		t.Run("hide="+hide, func(t *testing.T) {
			withWOKey(t, tallyTestKey)
			b := newBudgetPlane(t, 3)
			b.append(b.created())
			for i := range 3 {
				require.NoError(t, b.call(), "call %d fits the budget of three", i)
			}
			b.requireRefused(b.call(), "a fourth call is refused")
			// The attack: a second WO_CREATED appended, the tally
			// removed, and the first WO_CREATED hidden from createdSeq's
			// Find for one call: its index bucket zeroed ("index"), or its
			// line's event type renamed in place ("line": the posting's
			// check fails and Find scans, unchecked, past it; the checked
			// read that follows starts after it).
			if hide == "index" {
				hidePostings(t, b.dir, "ts\x00"+workorder.EventCreated+"\x00"+b.wo)
			}
			b.append(b.created())
			if hide == "line" {
				now, err := os.ReadFile(b.path)
				require.NoError(t, err)
				edited := bytes.Replace(now, []byte(`"WO_CREATED"`), []byte(`"WO_CREATEX"`), 1)
				require.NoError(t, os.WriteFile(b.path, edited, 0o644))
			}
			require.NoError(t, os.Remove(woTallyFile(b.dir, b.wo)))
			err := b.call()
			if hide == "line" {
				// Put back the first WO_CREATED's bytes.
				now, rerr := os.ReadFile(b.path)
				require.NoError(t, rerr)
				require.NoError(t, os.WriteFile(b.path, bytes.Replace(now, []byte(`"WO_CREATEX"`), []byte(`"WO_CREATED"`), 1), 0o644))
			}
			// Put back: the index removed (rebuilt by the next writer).
			b.verifyClean(3)
			require.NoError(t, os.Remove(ledger.IndexPath(b.path)))
			if hide == "line" {
				var le *ledger.Error
				require.ErrorAs(t, err, &le, "the renamed line is read checked: the call is refused")
				require.Equal(t, "LEDGER_INVALID", le.Code())
			} else {
				var be *BudgetError
				require.ErrorAs(t, err, &be, "the tally begun from nothing reads from the first WO_CREATED: a fourth call is refused")
			}
			var be *BudgetError
			require.ErrorAs(t, b.call(), &be, "with the files put back, a call past llm_calls 3 is refused")
			// recover's recheck reads the whole ledger: nothing was
			// reserved against lowered sums.
			l := b.open()
			defer l.Close()
			var warnings []string
			found, err := recheckWOTallies(context.Background(), b.dir, l, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
			require.NoError(t, err)
			require.Empty(t, found, "no reservation was made against lowered sums")
			for _, w := range warnings {
				require.NotContains(t, w, "was made against sums below the ledger's")
			}
		})
	}
}

// forkAt replaces the budget ledger's files (lines and stored hashes) by
// a fork that keeps its first k entries byte for byte and then has n-k
// entries of its own (NOTE entries: none of the work order's calls), the
// index removed: the lines after k and the stored hashes edited to agree,
// so that a checked read from k, with the root of the first k entries,
// passes. It returns a function that puts the honest files back.
func forkAt(t *testing.T, path string, k, n int) (putBack func()) {
	t.Helper()
	hashes, _, _ := ledger.SidePaths(path)
	saved := map[string][]byte{}
	for _, p := range []string{path, hashes} {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		saved[p] = b
	}
	var off int
	for range k {
		off += bytesIndex(saved[path][off:], '\n') + 1
	}
	fdir := t.TempDir()
	fpath := filepath.Join(fdir, "budget.jsonl")
	fhashes, _, _ := ledger.SidePaths(fpath)
	require.NoError(t, os.WriteFile(fpath, saved[path][:off], 0o644))
	require.NoError(t, os.WriteFile(fhashes, saved[hashes][:storedHashBytes(int64(k))], 0o644))
	f, err := ledger.OpenWriter(fpath, ledger.Options{Actor: "test"})
	require.NoError(t, err)
	for range n - k {
		_, err := f.Append(context.Background(), []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "fork"}})
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
	for p, fp := range map[string]string{path: fpath, hashes: fhashes} {
		b, err := os.ReadFile(fp)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, b, 0o644))
	}
	removeIdx := func() {
		if err := os.Remove(ledger.IndexPath(path)); err != nil && !os.IsNotExist(err) {
			require.NoError(t, err)
		}
	}
	removeIdx()
	return func() {
		for p, b := range saved {
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}
		removeIdx()
	}
}

func bytesIndex(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// storedHashBytes is the size of the stored hashes of a tree of n leaves.
func storedHashBytes(n int64) int64 {
	var c int64
	for i := range n {
		// Leaf i adds 1 + the number of trailing ones of i stored hashes.
		c++
		for j := i; j&1 == 1; j >>= 1 {
			c++
		}
	}
	return c * 32
}

// TestAttack34TailEditWithHashesNotKept: both tallies believed at size k
// (their root the honest tree's), then the lines after k edited (the work
// order's calls gone) with the stored hashes edited to agree, for one
// catch-up: FindChecked from k passes (the frontier at k is untouched,
// the root it must make is the edited hashes' own) and the tallies seal
// the lowered sums with the edited tree. With the honest files back,
// neither tally is believed (its tree is not the ledger's), and both sums
// are the ledger's again.
func TestAttack34TailEditWithHashesNotKept(t *testing.T) {
	ctx := context.Background()
	dir, l := tallyLedger(t)
	const wo = "WO-20260101-001"
	path := filepath.Join(dir, "ledger", "budget.jsonl")
	created := ledger.Draft{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "a work order"}
	_, err := l.Append(ctx, []ledger.Draft{created, {EventType: "NOTE", Decision: "x", Reason: "y"}, {EventType: "NOTE", Decision: "x", Reason: "y"}})
	require.NoError(t, err)
	caps := func(l ledger.Store) *tally {
		tl, _, err := loadTally(ctx, dir, l, tallyTestKey, false, t.Logf)
		require.NoError(t, err)
		return tl
	}
	caps(l)
	loadWO(t, dir, l, tallyTestKey, wo)
	const k = 3
	var ds []ledger.Draft
	for i := range 5 {
		x := woRes{rid: fmt.Sprintf("RSV-00000000000000%02x", i), wo: wo, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
		ds = append(ds, x.reserved(), x.call(StatusOK, 10, 20, 30))
	}
	_, err = l.Append(ctx, ds)
	require.NoError(t, err)
	st, err := l.State(ctx)
	require.NoError(t, err)
	n := int(st.Size)
	honestWO := woWholeSum(t, l, wo).total(nil)
	honestCaps := wholeSum(t, l).total(nil)
	require.Equal(t, int64(5), honestWO.Calls)
	require.NoError(t, l.Close())

	putBack := forkAt(t, path, k, n)
	lf, err := ledger.OpenWriter(path, ledger.Options{Actor: "test"})
	require.NoError(t, err)
	require.Equal(t, Spend{}, loadWO(t, dir, lf, tallyTestKey, wo).spend().ofWorkOrder(), "the edited tail's sums, sealed")
	require.Equal(t, Spend{}, caps(lf).spend().ofPlane(), "the edited tail's sums, sealed")
	require.NoError(t, lf.Close())

	putBack()
	lh, err := ledger.OpenWriter(path, ledger.Options{Actor: "test"})
	require.NoError(t, err)
	defer lh.Close()
	require.Equal(t, honestWO, loadWO(t, dir, lh, tallyTestKey, wo).spend().ofWorkOrder(), "the honest ledger back: its sums")
	require.Equal(t, honestCaps, caps(lh).spend().ofPlane(), "the honest ledger back: its sums")
}

// TestAttack34HashesBehindLines: the stored hashes (X.tlog) cut back by
// one entry's (the last call's LLM_CALL), as a crash between a line and
// its hashes leaves them: the state counts one entry fewer than the
// file's lines. A call must not be reserved against sums without that
// entry (which the next append keeps, its hashes completed).
func TestAttack34HashesBehindLines(t *testing.T) {
	for _, c := range []struct {
		key       []byte
		afterOpen bool
	}{{nil, false}, {tallyTestKey, false}, {nil, true}, {tallyTestKey, true}} {
		key := c.key
		t.Run(fmt.Sprintf("key=%t,afterOpen=%t", key != nil, c.afterOpen), func(t *testing.T) {
			withWOKey(t, key)
			b := newBudgetPlane(t, 3)
			b.append(b.created())
			for i := range 3 {
				require.NoError(t, b.call(), "call %d fits the budget of three", i)
			}
			// The last line is the third call's LLM_CALL: its stored
			// hashes removed.
			l := b.open()
			st, err := l.State(context.Background())
			require.NoError(t, err)
			require.NoError(t, l.Close())
			hashes, _, _ := ledger.SidePaths(b.path)
			cut := func() { require.NoError(t, os.Truncate(hashes, storedHashBytes(st.Size-1))) }
			if c.afterOpen {
				err = b.callWith(cut)
			} else {
				cut()
				err = b.call()
			}
			var be *BudgetError
			assert.ErrorAs(t, err, &be, "a fourth call past llm_calls 3 was reserved against a state one entry short")
			if err == nil {
				b.verifyClean(4)
			}
		})
	}
}

// TestAttack34RecheckOverEditedLedger: recover's recheck of the
// work-order tallies (recheckWOTallies) over an edited ledger: a line
// edited in place (the work order's calls renamed) fails it closed,
// LEDGER_INVALID, and no tally is rewritten; lines and stored hashes
// edited to agree (a fork of the same size, none of the work order's
// calls) are not silent: the tally is named as not matching, and the
// lowered sums it seals are not believed once the files are back.
func TestAttack34RecheckOverEditedLedger(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*budgetPlane, []byte) {
		withWOKey(t, tallyTestKey)
		b := newBudgetPlane(t, 10)
		b.append(b.created(), ledger.Draft{EventType: "NOTE", Decision: "x", Reason: "y"})
		for i := range 3 {
			require.NoError(t, b.call(), "call %d", i)
		}
		b.append(ledger.Draft{EventType: "NOTE", Decision: "x", Reason: "y"})
		sealed, err := os.ReadFile(woTallyFile(b.dir, b.wo))
		require.NoError(t, err)
		return b, sealed
	}
	recheck := func(b *budgetPlane) ([]string, error) {
		l := b.open()
		defer l.Close()
		var warnings []string
		_, err := recheckWOTallies(ctx, b.dir, l, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
		return warnings, err
	}
	t.Run("a line edited in place", func(t *testing.T) {
		b, sealed := setup(t)
		honest, err := os.ReadFile(b.path)
		require.NoError(t, err)
		edited := bytes.ReplaceAll(honest, []byte(`"LLM_CALL"`), []byte(`"LLM_CALX"`))
		require.NoError(t, os.WriteFile(b.path, edited, 0o644))
		_, err = recheck(b)
		var le interface{ Code() string }
		require.ErrorAs(t, err, &le, "recover's recheck over an edited line fails")
		require.Equal(t, "LEDGER_INVALID", le.Code())
		now, err := os.ReadFile(woTallyFile(b.dir, b.wo))
		require.NoError(t, err)
		require.Equal(t, string(sealed), string(now), "no tally rewritten")
		require.NoError(t, os.WriteFile(b.path, honest, 0o644))
		warnings, err := recheck(b)
		require.NoError(t, err)
		require.Empty(t, warnings)
	})
	t.Run("lines and stored hashes edited to agree", func(t *testing.T) {
		b, _ := setup(t)
		l := b.open()
		st, err := l.State(ctx)
		require.NoError(t, err)
		honest := woWholeSum(t, l, b.wo).total(nil)
		require.NoError(t, l.Close())
		putBack := forkAt(t, b.path, 2, int(st.Size))
		warnings, err := recheck(b)
		require.NoError(t, err)
		require.NotEmpty(t, warnings, "the tally that no longer matches is named")
		require.Contains(t, strings.Join(warnings, "\n"), "did not match")
		putBack()
		l = b.open()
		defer l.Close()
		require.Equal(t, honest, loadWO(t, b.dir, l, tallyTestKey, b.wo).spend().ofWorkOrder(), "the honest ledger back: its sums")
	})
}

// TestAttack34Rollback: the plane's files restored from an older copy.
// The older ledger (lines and stored hashes) under the newer tallies: a
// tally larger than the ledger is not believed, and the call sums the
// older ledger (what a rollback of the ledger allows, tally or not). With
// the newer files back, the tallies written over the older ledger (a
// fork of it) are not believed, and the budget is the ledger's. An older
// tally restored over the newer ledger is believed and caught up: the
// same sums.
func TestAttack34Rollback(t *testing.T) {
	withWOKey(t, tallyTestKey)
	b := newBudgetPlane(t, 3)
	b.append(b.created())
	for i := range 2 {
		require.NoError(t, b.call(), "call %d", i)
	}
	hashes, ckpt, _ := ledger.SidePaths(b.path)
	files := []string{b.path, hashes, ledger.IndexPath(b.path), woTallyFile(b.dir, b.wo), ckpt}
	snapshot := func() map[string][]byte {
		m := map[string][]byte{}
		for _, p := range files {
			if c, err := os.ReadFile(p); err == nil {
				m[p] = c
			}
		}
		return m
	}
	restore := func(m map[string][]byte, which ...string) {
		for _, p := range which {
			os.Remove(p)
			if c, ok := m[p]; ok {
				require.NoError(t, os.WriteFile(p, c, 0o644))
			}
		}
	}
	older := snapshot()
	require.NoError(t, b.call(), "the third call")
	newer := snapshot()
	b.requireRefused(b.call(), "a fourth call is refused")

	// An older tally over the newer ledger: caught up.
	restore(older, woTallyFile(b.dir, b.wo))
	b.requireRefused(b.call(), "an older tally restored: a fourth call is refused")

	// The older ledger under the newer tally, for one call.
	restore(newer, woTallyFile(b.dir, b.wo))
	restore(older, b.path, hashes, ledger.IndexPath(b.path), ckpt)
	require.NoError(t, b.call(), "the rolled-back ledger holds two calls (a rollback's allowance, not the tally's)")
	// The newer files back, the tally written over the rollback kept.
	restore(newer, b.path, hashes, ledger.IndexPath(b.path), ckpt)
	b.requireRefused(b.call(), "the newer ledger back: a fourth call is refused")
	b.verifyClean(3)
}

// TestAttack34RecheckWithoutTallyFile: recover's recheck named a
// reservation made against sums below the ledger's (HiddenRead) only for
// the work orders that had a tally file in HO2's ledger directory: it
// read the whole ledger checked, but kept the truth only of those. A
// reservation reserved against lowered sums (as a lie sealed in a tally
// begun too late left one, TestAttack34CreatedHiddenSecondCreated before
// session 34's fix), then the work order's tally file removed (a state
// the plane tolerates: the next call recomputes it): recover named
// nothing (FAILED at f5f7013). It names it now, tally file or not.
func TestAttack34RecheckWithoutTallyFile(t *testing.T) {
	withWOKey(t, tallyTestKey)
	b := newBudgetPlane(t, 3)
	b.append(b.created())
	for i := range 3 {
		require.NoError(t, b.call(), "call %d", i)
	}
	// The trace of a hidden read: a reservation that recorded the work
	// order's sums as nothing, after three calls.
	x := woRes{rid: "RSV-00000000000000f1", wo: b.wo, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10}}
	d := x.reserved()
	d.Metadata["wo_spent"] = Spend{}.fields()
	b.append(d)
	require.NoError(t, os.Remove(woTallyFile(b.dir, b.wo)))
	l := b.open()
	defer l.Close()
	var warnings []string
	found, err := recheckWOTallies(context.Background(), b.dir, l, plane.Tier{}, func(f string, args ...any) { warnings = append(warnings, fmt.Sprintf(f, args...)) })
	require.NoError(t, err)
	require.Len(t, found, 1, "recover names the reservation made against lowered sums, tally file or not (warnings: %q)", warnings)
	require.Equal(t, x.rid, found[0].ReservationID)
	require.Equal(t, int64(3), found[0].Ledger.Calls)
	_, err = os.Stat(woTallyFile(b.dir, b.wo))
	require.True(t, os.IsNotExist(err), "recover writes no tally the plane did not keep")
}

// TestAttack34CreatedEditedLater: a tally begun from nothing, the first
// WO_CREATED hidden from the index, and a later line of the work order
// (a NOTE after its calls) edited in place to read as its WO_CREATED (no
// hash can be made to match without the stored hashes): the lookup finds
// the edited line, and the checked read, which starts there, refuses it
// (LEDGER_INVALID); no tally is sealed. With the bytes back, the budget
// holds.
func TestAttack34CreatedEditedLater(t *testing.T) {
	withWOKey(t, tallyTestKey)
	b := newBudgetPlane(t, 3)
	b.append(b.created())
	for i := range 3 {
		require.NoError(t, b.call(), "call %d", i)
	}
	b.append(ledger.Draft{EventType: "NOTE", SubmissionID: b.wo, Decision: "x", Reason: "a note"})
	honest, err := os.ReadFile(b.path)
	require.NoError(t, err)
	i := bytes.LastIndex(honest, []byte(`"event_type":"NOTE"`))
	require.Positive(t, i)
	edited := append(append(bytes.Clone(honest[:i]), `"event_type":"WO_CREATED"`...), honest[i+len(`"event_type":"NOTE"`):]...)
	hidePostings(t, b.dir, "ts\x00"+workorder.EventCreated+"\x00"+b.wo)
	require.NoError(t, os.WriteFile(b.path, edited, 0o644))
	require.NoError(t, os.Remove(woTallyFile(b.dir, b.wo)))
	err = b.call()
	var le interface{ Code() string }
	require.ErrorAs(t, err, &le, "a call over the edited line is refused")
	require.Equal(t, "LEDGER_INVALID", le.Code(), "%v", err)
	_, serr := os.Stat(woTallyFile(b.dir, b.wo))
	require.True(t, os.IsNotExist(serr), "no tally sealed")
	require.NoError(t, os.WriteFile(b.path, honest, 0o644))
	b.verifyClean(3)
	b.requireRefused(b.call(), "with the bytes back, a fourth call is refused")
}
