//go:build !nopostgres

package plane

import (
	"context"
	"os"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/pgstore"
)

// The PostgreSQL ledger store is linked unless the binary is built with
// -tags nopostgres (nopostgres.go): pgx and what it brings (crypto/tls,
// x/text's precis, encoding/xml, ...) cost every process ~0.4 ms of start-up
// (package init and a binary 5 MB larger), whether or not any tier uses it.
// Everything of this package that needs pgstore is in this file.

// openPostgres opens the tier's ledger in PostgreSQL, the DSN read from
// the environment variable tier.json names (never from tier.json: it holds
// the password). Unset, or a database that cannot be reached, is
// LEDGER_UNAVAILABLE: fail closed, never an empty ledger.
func openPostgres(dir string, t Tier, a Access, opts ledger.Options) (ledger.Store, error) {
	ls := t.LedgerStore
	dsn := os.Getenv(ls.DSNEnv)
	if dsn == "" {
		return nil, ledger.Errorf(pgstore.Unavailable, "%s's ledger is in PostgreSQL (tier.json ledger_store), and $%s, which must hold its DSN, is not set", t.Tier, ls.DSNEnv)
	}
	s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{
		Name: ls.Name, Ledger: opts, Writable: a == ForAppend,
		CheckpointFile: PostgresCheckpointPath(dir, t),
	})
	if err != nil {
		return nil, err // not a nil *pgstore.Store in a non-nil Store
	}
	return s, nil
}

// openDatabase opens ledger ls of the tier in the database, for appending,
// with the plane's key: its origin is the tier ledger's, whatever the store.
func openDatabase(ctx context.Context, dir string, t Tier, ls LedgerStore, actor Actor) (database, error) {
	dsn := os.Getenv(ls.DSNEnv)
	if dsn == "" {
		return nil, ledger.Errorf(pgstore.Unavailable, "$%s, which must hold the DSN of %s's ledger database, is not set", ls.DSNEnv, t.Tier)
	}
	opts, err := ledgerOptions(dir, t, LedgerPath(dir, t), actor)
	if err != nil {
		return nil, err
	}
	pt := t
	pt.LedgerStore = &ls
	db, err := pgstore.Open(ctx, dsn, pgstore.Options{Name: ls.Name, Ledger: opts, Writable: true, CheckpointFile: PostgresCheckpointPath(dir, pt)})
	if err != nil {
		return nil, err
	}
	return db, nil
}
