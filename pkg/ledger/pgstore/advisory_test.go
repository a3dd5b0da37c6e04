package pgstore

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
)

// TestAdvisory: the advisory lock of a ledger excludes another store's
// Advisory of the same key until released, again and again on the
// connection each store keeps idle between them; a wait past the lock
// timeout is LOCK_TIMEOUT and leaves the store able to lock once it is
// free; an idle connection the server ended is replaced; and keeping it
// idle makes a lock a round trip, not a connection.
func TestAdvisory(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := advisoryExcludes(t, dsn)
	// The idle connections ended by the server: the next locks take new
	// ones.
	n := count(t, dsn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'ROLLBACK%'`)
	require.EqualValues(t, 2, n, "a's and b's idle connections")
	time.Sleep(100 * time.Millisecond) // the backends gone
	for _, s := range []*Store{a, b} {
		rel, err := s.Advisory(ctx, "route-session")
		require.NoError(t, err)
		rel()
	}
	t0 := time.Now()
	for range 20 {
		rel, err := a.Advisory(ctx, "route-session")
		require.NoError(t, err)
		rel()
	}
	each := time.Since(t0) / 20
	t.Logf("Advisory and release: %v each", each)
	require.Less(t, each, 20*time.Millisecond, "a connection opened for each lock")
}

// TestPooledAdvisory: the same exclusion through PgBouncer, in session and
// in transaction pooling (the idle connection's transaction ended, its
// server connection goes back to the pool between locks).
func TestPooledAdvisory(t *testing.T) {
	for _, m := range pooledModes {
		t.Run(m.mode, func(t *testing.T) { advisoryExcludes(t, pooled(t, m.mode, m.dsnExtra)) })
	}
}

func advisoryExcludes(t *testing.T, dsn string) (a, b *Store) {
	a = open(t, dsn, "governance", ledger.Options{Actor: "a"}, "")
	b = open(t, dsn, "governance", ledger.Options{Actor: "b", LockTimeout: 300 * time.Millisecond}, "")
	for round := range 3 {
		rel, err := a.Advisory(ctx, "route-session")
		require.NoError(t, err, "round %d", round)
		got := make(chan error, 1)
		go func() {
			rel, err := b.Advisory(ctx, "route-session")
			if err == nil {
				rel()
			}
			got <- err
		}()
		select {
		case err := <-got:
			require.Error(t, err, "round %d: b locked while a held the lock", round)
			var c interface{ Code() string }
			require.ErrorAs(t, err, &c, "round %d", round)
			require.Equal(t, "LOCK_TIMEOUT", c.Code(), "round %d: %v", round, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: b waited past its lock timeout", round)
		}
		// Another key is another lock.
		other, err := b.Advisory(ctx, "llm-budget")
		require.NoError(t, err, "round %d", round)
		other()
		rel()
		rel, err = b.Advisory(ctx, "route-session")
		require.NoError(t, err, "round %d: free once a released it", round)
		rel()
	}
	return a, b
}
