package llm

import (
	"github.com/control-plane/cp/pkg/ledger"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/gate"
)

// The judge of abandoned reservations: a reservation whose in-flight lock
// another open file description holds (in this process or another) is in
// flight; once that description is closed (its caller died) it is
// abandoned, and settled once, in full, without changing the sums. One
// without a mark, or marked on another boot, is never judged.
func TestJudgeAbandoned(t *testing.T) {
	if !inflightSupported || bootID() == "" {
		t.Skip("no in-flight marks on this system")
	}
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
	live, dead := newReservationID(), newReservationID()
	h1, err := openInflight(dir)
	require.NoError(t, err)
	defer h1.close()
	require.NoError(t, h1.hold(live))
	h2, err := openInflight(dir)
	require.NoError(t, err)
	require.NoError(t, h2.hold(dead))
	h2.close() // its caller is gone

	res := func(rid, boot string) *spendRow {
		return &spendRow{max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}, boot: boot, lock: h1.id, wo: "WO-1", seq: 7,
			meta: map[string]any{"reservation_id": rid, "gen_ai.request.max_tokens": int64(200), "subject": "ops", "provider_id": "p"}}
	}
	ls := newLedgerSpend()
	for rid, row := range map[string]*spendRow{live: res(live, bootID()), dead: res(dead, bootID()),
		"RSV-00000000000000aa": res("RSV-00000000000000aa", ""), "RSV-00000000000000bb": res("RSV-00000000000000bb", "another-boot")} {
		ls.reserved[rid] = row
		ls.order = append(ls.order, rid)
	}
	before := ls.total(nil)
	j := newJudge(dir)
	defer j.close()
	ds, ss := j.settle(ls, "recover")
	require.Len(t, ds, 1, "only the reservation whose caller is gone")
	require.Equal(t, dead, ss[0].ReservationID)
	m := ds[0].Metadata
	require.Equal(t, EventCall, ds[0].EventType)
	require.Equal(t, StatusAbandoned, m["status"])
	require.Equal(t, int64(900), m["cost_micro_usd"])
	require.Equal(t, int64(100), m["gen_ai.usage.input_tokens"])
	require.Equal(t, int64(200), m["gen_ai.usage.output_tokens"])
	require.Equal(t, int64(7), m["reserved_seq"])
	require.Equal(t, before, ls.total(nil), "settling in full changes no sum")

	// A second sum in the same step (another budget's) settles it no more.
	ls2 := newLedgerSpend()
	ls2.reserved[dead], ls2.order = res(dead, bootID()), []string{dead}
	ds, _ = j.settle(ls2, "recover")
	require.Empty(t, ds)
	require.True(t, ls2.reserved[dead].settled)

	// The live caller ends: its reservation becomes abandoned.
	h1.close()
	ls3 := newLedgerSpend()
	ls3.reserved[live], ls3.order = res(live, bootID()), []string{live}
	ds, _ = newJudge(dir).settle(ls3, "next_call")
	require.Len(t, ds, 1)
}

// The gates know the gateway's lock files in HO2's ledger directory (G6
// reports anything else there as LEDGER_STRAY).
func TestGateKnowsLockFiles(t *testing.T) {
	for _, p := range []string{inflightFile("d"), filepath.Join("d", "ledger", "llm-budget.lock"), tallyFile("d"), createdFile("d")} {
		require.Contains(t, gate.GatewayLockFiles, filepath.Base(p))
		require.Equal(t, "ledger", filepath.Base(filepath.Dir(p)))
	}
	p := woTallyFile("d", "WO-20260101-001")
	require.True(t, gate.WOTallyFile(filepath.Base(p)), "G6 knows a work order's tally by its name")
	require.Equal(t, "ledger", filepath.Base(filepath.Dir(p)))
}

// TestJudgeOtherLockFile: a judge whose lock file is not the one a
// reservation's mark is on (the file replaced while the caller holds its
// mark, or a reservation that names no file) judges nothing: the caller's
// lock cannot be seen from another file, and a live call must never be
// settled as abandoned (the end-to-end case:
// TestLLMInflightLockReplacedNotAbandoned).
func TestJudgeOtherLockFile(t *testing.T) {
	if !inflightSupported || bootID() == "" {
		t.Skip("no in-flight marks on this system")
	}
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
	live := newReservationID()
	h, err := openInflight(dir)
	require.NoError(t, err)
	defer h.close()
	require.NoError(t, h.hold(live))
	row := func(lock string) *ledgerSpend {
		ls := newLedgerSpend()
		ls.add(&ledger.Entry{EventType: EventReserved, Seq: 3, Metadata: map[string]any{"reservation_id": live,
			"inflight_boot_id": bootID(), "inflight_file": lock, "max_cost_micro_usd": int64(9), "max_tokens_total": int64(9)}})
		return ls
	}
	ds, _ := newJudge(dir).settle(row(h.id), "recover")
	require.Empty(t, ds, "held on this very file: in flight")

	require.NoError(t, os.Remove(inflightFile(dir)))
	require.NoError(t, os.WriteFile(inflightFile(dir), nil, 0o644))
	for _, lock := range []string{h.id, ""} {
		j := newJudge(dir)
		ds, _ := j.settle(row(lock), "recover")
		require.Empty(t, ds, "lock file replaced, mark on %q: not judged", lock)
		j.close()
	}
	// Once the caller is gone, a judge of the file it marked on would
	// settle it; on the new file it stays unjudged, counting in full.
	h.close()
	ds, _ = newJudge(dir).settle(row(h.id), "recover")
	require.Empty(t, ds)
}

// TestInflightLockPlanted: a FIFO or a symbolic link planted at
// llm-inflight.lock (by a process that can write HO2's files) is never
// opened through or waited on: a caller marks nothing (its reservation
// counts in full, never settled by another), a judge judges nothing, and
// neither blocks.
func TestInflightLockPlanted(t *testing.T) {
	if !inflightSupported || bootID() == "" {
		t.Skip("no in-flight marks on this system")
	}
	for _, kind := range []string{"fifo", "symlink"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
			target := filepath.Join(t.TempDir(), "elsewhere.lock")
			require.NoError(t, os.WriteFile(target, nil, 0o644))
			if kind == "fifo" {
				require.NoError(t, syscall.Mkfifo(inflightFile(dir), 0o644))
			} else {
				require.NoError(t, os.Symlink(target, inflightFile(dir)))
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, err := openInflight(dir)
				require.Error(t, err, "a caller takes no mark through a %s", kind)
				rid := newReservationID()
				ls := newLedgerSpend()
				ls.add(&ledger.Entry{EventType: EventReserved, Seq: 1, Metadata: map[string]any{"reservation_id": rid,
					"inflight_boot_id": bootID(), "inflight_file": "1:1", "max_cost_micro_usd": int64(1), "max_tokens_total": int64(1)}})
				j := newJudge(dir)
				ds, _ := j.settle(ls, "recover")
				j.close()
				require.Empty(t, ds, "a judge judges nothing through a %s", kind)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("blocked on a %s", kind)
			}
		})
	}
}

// TestJudgeSettledSince: a caller appends its LLM_CALL and then lets go of
// its reservation's mark; a call that read the sums before that LLM_CALL
// (its reservation still open in them) and judges the reservation after
// the mark was let go must not take it for abandoned: settled in full as
// well, it was charged twice, and a call the budget allowed was refused
// (TestLLMBudgetRacePostgres, once in CI: four calls of five). The judge
// reads the ledger again for a reservation whose mark it finds free.
func TestJudgeSettledSince(t *testing.T) {
	if !inflightSupported || bootID() == "" {
		t.Skip("no in-flight marks on this system")
	}
	ctx := t.Context()
	dir, l := tallyLedger(t)
	rid := newReservationID()
	h, err := openInflight(dir)
	require.NoError(t, err)
	require.NoError(t, h.hold(rid))
	x := woRes{rid: rid, wo: "WO-20260101-001", provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 300, MicroUSD: 900}}
	d := x.reserved()
	d.Metadata["inflight_boot_id"], d.Metadata["inflight_file"] = bootID(), h.id
	_, err = l.Append(ctx, []ledger.Draft{d})
	require.NoError(t, err)
	// The sums as another call reads them: the reservation open.
	sums := func() *ledgerSpend {
		ls := newLedgerSpend()
		require.NoError(t, l.Find(ctx, ledger.Query{EventTypes: []string{EventReserved}}, func(e *ledger.Entry) bool { ls.add(e); return true }))
		return ls
	}
	before := sums()
	// Its caller settles it, durably, then lets go of the mark.
	_, err = l.Append(ctx, []ledger.Draft{x.call(StatusOK, 10, 10, 5)})
	require.NoError(t, err)
	h.close()

	j := newJudge(dir)
	defer j.close()
	ds, _ := j.settle(before, "next_call")
	require.Len(t, ds, 1, "without the ledger read again, the judge takes it for abandoned")
	j2 := newJudge(dir)
	j2.store = l
	defer j2.close()
	ds, _ = j2.settle(sums(), "next_call")
	require.Empty(t, ds, "its LLM_CALL is in the ledger: not abandoned")

	// A reservation truly abandoned (no LLM_CALL, mark let go) still is.
	dead := newReservationID()
	h2, err := openInflight(dir)
	require.NoError(t, err)
	require.NoError(t, h2.hold(dead))
	y := x
	y.rid = dead
	d = y.reserved()
	d.Metadata["inflight_boot_id"], d.Metadata["inflight_file"] = bootID(), h2.id
	_, err = l.Append(ctx, []ledger.Draft{d})
	require.NoError(t, err)
	h2.close()
	ds, ss := j2.settle(sums(), "next_call")
	require.Len(t, ds, 1)
	require.Equal(t, dead, ss[0].ReservationID)
}
