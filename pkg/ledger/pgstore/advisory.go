package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/control-plane/cp/pkg/ledger"
)

// Advisory takes the database's transaction-level advisory lock named by
// the ledger's name and key, and keeps it until release is called: a
// lock that every process, on any machine, holding a Store of the same
// ledger in the same database waits for (the LLM gateway holds its
// budget ledger this way from its sums to its reservation's commit, so
// that two gateways never both see room for the last call). It is the
// caller's own exclusion: appends do not take it.
//
// The lock is taken inside a transaction left open on a connection of
// its own (pg_advisory_xact_lock), not as a session lock: through a
// pooler in transaction pooling mode (PgBouncer) a session lock would be
// held by whichever client gets the server connection next, while an
// open transaction keeps its server connection, and the lock, to itself.
// The wait is bounded by the ledger's LockTimeout (LOCK_TIMEOUT) and by
// ctx. If the process dies, its connection closes and the server (or the
// pooler, which drops a server connection left in a transaction) ends
// the transaction: the lock goes with it.
//
// The connection is kept, idle, for the store's next Advisory (a stream's
// next batch): opening one was most of what a lock cost (45 ms on the test
// database, where a round trip takes 0.2 ms).
func (s *Store) Advisory(ctx context.Context, key string) (release func(), err error) {
	name := s.opts.Name
	lit, err := literal("cp/" + name + "/" + key)
	if err != nil {
		return nil, err
	}
	// One round trip (the simple protocol runs the three statements in
	// order, the transaction left open): no prepared statement, nothing
	// set for the session.
	sql := fmt.Sprintf(`BEGIN; SET LOCAL lock_timeout = %d; SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))`,
		s.opts.Ledger.LockTimeout.Milliseconds(), lit)
	if conn := s.idleAdvisory(); conn != nil {
		_, err := conn.PgConn().Exec(ctx, sql).ReadAll()
		if err == nil {
			return s.advisoryRelease(conn), nil
		}
		conn.Close(context.Background())
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55P03" || ctx.Err() != nil {
			// The lock still held at the timeout, or the caller gave
			// up: not a connection that died idle.
			return nil, lockErr(name, s.opts.Ledger.LockTimeout, err)
		}
		// The idle connection died (the server or a pooler closed it,
		// or ended its session): a new one.
	}
	conn, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, ledger.Errorf(Unavailable, "ledger %s: the database is unreachable: %s", name, redact(err))
	}
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		conn.Close(context.Background())
		return nil, lockErr(name, s.opts.Ledger.LockTimeout, err)
	}
	return s.advisoryRelease(conn), nil
}

// idleAdvisory takes the connection a released Advisory left idle, or nil.
func (s *Store) idleAdvisory() *pgx.Conn {
	s.advMu.Lock()
	defer s.advMu.Unlock()
	conn := s.advIdle
	s.advIdle = nil
	return conn
}

// advisoryRelease ends conn's transaction, the lock with it, and keeps
// conn idle for the next Advisory (one at most; none once the store is
// closed).
func (s *Store) advisoryRelease(conn *pgx.Conn) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Nothing was written in the transaction: rolled back, the lock
		// is released; closing the connection would release it too.
		if _, err := conn.PgConn().Exec(ctx, "ROLLBACK").ReadAll(); err == nil {
			s.advMu.Lock()
			if s.advIdle == nil && !s.advClosed {
				s.advIdle, conn = conn, nil
			}
			s.advMu.Unlock()
		}
		if conn != nil {
			conn.Close(ctx)
		}
	}
}

// closeAdvisory closes the idle Advisory connection (Close).
func (s *Store) closeAdvisory() {
	s.advMu.Lock()
	conn := s.advIdle
	s.advIdle, s.advClosed = nil, true
	s.advMu.Unlock()
	if conn != nil {
		conn.Close(context.Background())
	}
}
