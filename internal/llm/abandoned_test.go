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
