package pgstore

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// pooledModes are the ways a ledger is reached through PgBouncer (README
// "A tier's ledger in PostgreSQL"): session pooling with the DSN as it
// is, transaction pooling with pgx's default_query_exec_mode=exec (no
// prepared statements: each transaction may get another server
// connection).
var pooledModes = []struct{ mode, dsnExtra string }{
	{pgtest.Session, ""},
	{pgtest.Transaction, " default_query_exec_mode=exec"},
}

// pooled returns a fresh database's DSN through PgBouncer in mode.
func pooled(t *testing.T, mode, extra string) string {
	t.Helper()
	return pgtest.Pooled(t, pgtest.DB(t), mode) + extra
}

// TestPooledContract: the store's ledger table through PgBouncer, in
// session and in transaction pooling.
func TestPooledContract(t *testing.T) {
	for _, m := range pooledModes {
		t.Run(m.mode, func(t *testing.T) {
			dsn := pooled(t, m.mode, m.dsnExtra)
			n := 0
			storetest.Run(t, func(t *testing.T, opts ledger.Options) ledger.Store {
				n++
				return open(t, dsn, fmt.Sprintf("l%d", n), opts, filepath.Join(t.TempDir(), "l.checkpoint"))
			})
		})
	}
}

// TestPooledWriterProcesses: 8 writer processes × 500 entries through
// PgBouncer, in each mode: no loss, no fork, a ledger that verifies (read
// through the pooler too: Lines and the stored hashes on two
// connections at once).
func TestPooledWriterProcesses(t *testing.T) {
	for _, m := range pooledModes {
		t.Run(m.mode, func(t *testing.T) {
			writersNoLoss(t, pooled(t, m.mode, m.dsnExtra))
		})
	}
}

// TestPooledProve: a reader through PgBouncer proves an entry in one
// statement after connecting (as directly: TestProveReadsOnce), the same
// proof as a direct reader's, and verifies the ledger.
func TestPooledProve(t *testing.T) {
	for _, m := range pooledModes {
		t.Run(m.mode, func(t *testing.T) {
			direct := pgtest.DB(t)
			dsn := pgtest.Pooled(t, direct, m.mode) + m.dsnExtra
			k, vs := storetest.Key(t, "pooled/ho3/governance")
			ckpt := filepath.Join(t.TempDir(), "governance.checkpoint")
			w := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, ckpt)
			for i := range 40 {
				_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: fmt.Sprint("S-", i)}})
				require.NoError(t, err)
			}
			st := trace(t)
			r, err := Open(ctx, dsn, Options{Name: "governance", CheckpointFile: ckpt})
			require.NoError(t, err)
			defer r.Close()
			p, err := ledger.ProveInclusion(ctx, r, 17, 0, "proof")
			require.NoError(t, err)
			require.Equal(t, []string{openProofSQL}, st.take(), "one statement after connecting")
			require.NoError(t, ledger.VerifyInclusion(p, vs))
			d, err := Open(ctx, direct, Options{Name: "governance", CheckpointFile: ckpt})
			require.NoError(t, err)
			defer d.Close()
			pd, err := ledger.ProveInclusion(ctx, d, 17, 0, "proof")
			require.NoError(t, err)
			require.Equal(t, pd, p)
			rep, err := ledger.Verify(ctx, r, ledger.VerifyOptions{Verifiers: vs, Expect: true})
			require.NoError(t, err)
			require.True(t, rep.Valid, "%+v", rep.Issues)
			require.EqualValues(t, 40, rep.Entries)
		})
	}
}

// TestPooledSessionReset: what a connection leaves on its server
// connection does not reach the next client of a session pool. The store
// sets nothing for its session (SET LOCAL only) and its prepared
// statements (pgx's cache, named by their text: the next client's would
// collide) go with PgBouncer's DISCARD ALL. Writers one after another,
// until one is handed a server connection an earlier one used (the pool
// holds at most 10: the 11th at the latest): each finds no prepared
// statement, advisory lock or setting of the store's on it, and appends.
func TestPooledSessionReset(t *testing.T) {
	dsn := pooled(t, pgtest.Session, "")
	// The schema first: a writer's Open on an empty database migrates it
	// with statements of its own, prepared; on a current one it asks its
	// version in an unnamed one, and prepares nothing.
	w, err := Open(ctx, dsn, Options{Name: "governance", Writable: true})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	seen := map[int32]bool{}
	reused, writers := false, 0
	for !reused {
		require.Less(t, writers, 11, "a pool of at most 10 server connections hands one on")
		writers++
		s, err := Open(ctx, dsn, Options{Name: "governance", Writable: true, Ledger: ledger.Options{Actor: "tester"}})
		require.NoError(t, err)
		var pid int32
		var prepared, locks int
		var planMode, timeout, jit, jitReset string
		require.NoError(t, func() error { // a writer's pgx.Conn, as its appends use
			return s.conn.QueryRow(ctx, `SELECT pg_backend_pid(), (SELECT count(*) FROM pg_prepared_statements),
				(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
				current_setting('plan_cache_mode'), current_setting('lock_timeout'), current_setting('jit'),
				(SELECT reset_val FROM pg_settings WHERE name = 'jit')`, oneTrip).
				Scan(&pid, &prepared, &locks, &planMode, &timeout, &jit, &jitReset)
		}())
		reused = seen[pid]
		seen[pid] = true
		require.Zero(t, prepared, "writer %d: no prepared statement left on the server connection", writers)
		require.Zero(t, locks, "writer %d: no advisory lock left", writers)
		require.Equal(t, "auto", planMode, "writer %d: plan_cache_mode is set for a transaction only", writers)
		require.Equal(t, "0", timeout, "writer %d: lock_timeout is set for a transaction only", writers)
		require.Equal(t, jitReset, jit, "writer %d: jit as the server sets it", writers)
		for range 6 { // past pgx's and the server's thresholds of reuse
			_, err := s.Append(ctx, []ledger.Draft{{EventType: "EV"}, {EventType: "EV"}})
			require.NoError(t, err, "writer %d", writers)
		}
		require.NoError(t, s.Close())
	}
	r := open(t, dsn, "governance", ledger.Options{}, "")
	st, err := r.State(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 12*writers, st.Size)
}

// TestPooledTransactionWithoutExec: transaction pooling with pgx's
// prepared statements (the DSN without default_query_exec_mode=exec)
// fails, and says what to do; it writes nothing partial.
func TestPooledTransactionWithoutExec(t *testing.T) {
	dsn := pooled(t, pgtest.Transaction, "")
	var failed error
	for i := range 4 {
		s, err := Open(ctx, dsn, Options{Name: "governance", Writable: true, Ledger: ledger.Options{Actor: "tester"}})
		if err != nil {
			failed = err
			break
		}
		_, err = s.Append(ctx, []ledger.Draft{{EventType: "EV", Metadata: map[string]any{"i": i}}})
		s.Close()
		if err != nil {
			failed = err
			break
		}
	}
	require.Error(t, failed, "a second client's prepared statements meet the first's on the server connection")
	storetest.RequireCode(t, failed, Unavailable)
	require.ErrorContains(t, failed, "default_query_exec_mode=exec")
	r := open(t, dsn+" default_query_exec_mode=exec", "governance", ledger.Options{}, "")
	rep, err := ledger.Verify(ctx, r, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
}

// TestDBErrPreparedStatements: the codes a pooler in transaction mode
// brings out are LEDGER_UNAVAILABLE, with the fix.
func TestDBErrPreparedStatements(t *testing.T) {
	for _, code := range []string{"26000", "42P05"} {
		err := dbErr("governance", "appending", &pgconn.PgError{Code: code, Message: "prepared statement"})
		storetest.RequireCode(t, err, Unavailable)
		require.ErrorContains(t, err, "default_query_exec_mode=exec")
	}
}
