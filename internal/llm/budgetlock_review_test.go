package llm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/pgstore"
)

// TestBudgetLockSpansGateways: two gateways over one budget ledger must
// not both sum and reserve at once, or both see room for the last call
// and a budget of N allows N+1. For a tier in PostgreSQL the lock lives
// where the ledger is: the database's transaction-level advisory lock of
// the ledger (pgstore's Advisory), so two gateways with two plane
// directories (two hosts, two containers) exclude each other, directly
// and through PgBouncer in transaction pooling, where a session-level
// lock would not hold. The lock is the holder's until it releases it or
// its connection ends (a process killed: the server ends its
// transaction). (Until session 26 it was a flock in each gateway's own
// plane directory; the end-to-end race over two directories is
// TestLLMBudgetRacePostgres.)
func TestBudgetLockSpansGateways(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	for _, via := range []string{"direct", "pgbouncer-transaction"} {
		t.Run(via, func(t *testing.T) {
			d := dsn
			if via != "direct" {
				d = pgtest.Pooled(t, dsn, pgtest.Transaction) + " default_query_exec_mode=exec"
			}
			open := func() (string, *pgstore.Store) {
				dir := t.TempDir()
				require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
				s, err := pgstore.Open(ctx, d, pgstore.Options{Name: "budget-" + via, Writable: true,
					CheckpointFile: filepath.Join(dir, "ledger", "budget.checkpoint"),
					Ledger:         ledger.Options{Actor: "test", LockTimeout: 300 * time.Millisecond}})
				require.NoError(t, err)
				t.Cleanup(func() { s.Close() })
				return dir, s
			}
			a, sa := open()
			b, sb := open()
			release, err := holdLedger(ctx, a, sa)
			require.NoError(t, err)
			// The holder appends (its reservation) while it holds: the
			// lock excludes gateways, not appends.
			_, err = sa.Append(ctx, []ledger.Draft{reservedDraft("RSV-0000000000000001", "p", "s", 1, 1)})
			require.NoError(t, err)
			r2, err := holdLedger(ctx, b, sb)
			if err == nil {
				r2()
			}
			require.Error(t, err, "a second gateway over the same ledger took the budget lock while the first held it")
			var coded interface{ Code() string }
			require.ErrorAs(t, err, &coded)
			require.Equal(t, "LOCK_TIMEOUT", coded.Code(), "%v", err)
			_, err = os.Stat(filepath.Join(b, "ledger", "llm-budget.lock"))
			require.ErrorIs(t, err, os.ErrNotExist, "no lock file: the lock is the database's")

			// A waiter that gives up (its context ends) gets no lock.
			cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			_, err = holdLedger(cctx, b, sb)
			cancel()
			require.Error(t, err)

			release()
			r2, err = holdLedger(ctx, b, sb)
			require.NoError(t, err, "released: the other gateway takes it")
			// Another ledger's budget is another lock.
			_, sc := func() (string, *pgstore.Store) {
				dir := t.TempDir()
				require.NoError(t, os.Mkdir(filepath.Join(dir, "ledger"), 0o755))
				s, err := pgstore.Open(ctx, d, pgstore.Options{Name: "other-" + via, Writable: true,
					CheckpointFile: filepath.Join(dir, "ledger", "other.checkpoint"),
					Ledger:         ledger.Options{Actor: "test", LockTimeout: 300 * time.Millisecond}})
				require.NoError(t, err)
				t.Cleanup(func() { s.Close() })
				return dir, s
			}()
			r3, err := holdLedger(ctx, t.TempDir(), sc)
			require.NoError(t, err, "another ledger's budget lock is free")
			r3()
			r2()
		})
	}
}
