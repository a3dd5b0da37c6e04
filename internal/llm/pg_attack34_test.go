package llm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/pgstore"
)

// TestAttack34PostgresCheckedReadWhileAppending: HO2 in PostgreSQL,
// writers appending through handles of their own while readers read the
// state and FindChecked from random seqs (with the root of the entries
// before, and without), and work-order tallies begun from nothing
// (createdSeq through the store's Find, then the checked read): an honest
// ledger is never LEDGER_INVALID, every read gives each entry of its
// range once, and each tally's sums are the work order's.
func TestAttack34PostgresCheckedReadWhileAppending(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
	open := func() *pgstore.Store {
		s, err := pgstore.Open(ctx, dsn, pgstore.Options{Name: "budget", Writable: true,
			CheckpointFile: filepath.Join(dir, "ledger", "budget.checkpoint"),
			Ledger:         ledger.Options{Actor: "test", LockTimeout: 30 * time.Second}})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		return s
	}
	first := open()
	const wo = "WO-20260101-001"
	created := ledger.Draft{EventType: workorder.EventCreated, SubmissionID: wo, Decision: "CREATED", Reason: "a work order"}
	_, err := first.Append(ctx, []ledger.Draft{{EventType: "NOTE", Decision: "x", Reason: "y"}, created})
	require.NoError(t, err)
	errs := make(chan error, 64)
	var wg, readers sync.WaitGroup
	var calls atomic.Int64
	for w := range 3 {
		s := open()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				x := woRes{rid: fmt.Sprintf("RSV-%016x", w<<8|i), wo: wo, provider: "p", subject: "s", max: Spend{Calls: 1, Tokens: 100, MicroUSD: 10}}
				ds := []ledger.Draft{x.reserved(), x.call(StatusOK, 1, 2, 3), {EventType: "NOTE", Decision: "x", Reason: "y"}}
				if _, err := s.Append(ctx, ds); err != nil {
					errs <- fmt.Errorf("append: %w", err)
					return
				}
				calls.Add(1)
			}
		}()
	}
	done := make(chan struct{})
	var reads atomic.Int64
	for rd := range 2 {
		s := open()
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				st, err := s.State(ctx)
				if err != nil {
					errs <- err
					return
				}
				from := int64(i*7+rd) % (st.Size + 1)
				var root *tlog.Hash
				if i%2 == 0 {
					h, err := tlog.TreeHash(from, s)
					if err != nil {
						errs <- err
						return
					}
					root = &h
				}
				n := int64(0)
				if err := ledger.FindChecked(ctx, s, ledger.Query{From: from}, root, st, func(e *ledger.Entry) {
					if e.Seq != from+n {
						errs <- fmt.Errorf("entry %d where %d was due", e.Seq, from+n)
					}
					n++
				}); err != nil {
					errs <- fmt.Errorf("FindChecked from %d of %d: %w", from, st.Size, err)
					return
				}
				if n != st.Size-from {
					errs <- fmt.Errorf("FindChecked from %d of %d gave %d entries", from, st.Size, n)
					return
				}
				// A work-order tally begun from nothing, as of st.
				tl := newWOTally(wo)
				if err := tl.catchUp(ctx, s, st, true, 0); err != nil {
					errs <- fmt.Errorf("a tally begun from nothing: %w", err)
					return
				}
				want := newLedgerSpend()
				if err := s.Find(ctx, ledger.Query{EventTypes: []string{EventReserved, EventCall}, Subject: wo}, func(e *ledger.Entry) bool {
					if e.Seq < st.Size {
						want.add(e)
					}
					return true
				}); err != nil {
					errs <- err
					return
				}
				if got, w := tl.spend().ofWorkOrder(), want.total(nil); got != w {
					errs <- fmt.Errorf("a tally begun from nothing at %d: %+v, the ledger's %+v", st.Size, got, w)
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	during := reads.Load()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d checked reads, %d while appending", reads.Load(), during)
	require.Positive(t, during)
}
