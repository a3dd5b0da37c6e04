//go:build nopostgres

package plane

import (
	"context"

	"github.com/control-plane/cp/pkg/ledger"
)

// openPostgres in a binary built with -tags nopostgres (for planes whose
// ledgers are all files: it starts ~0.4 ms sooner, see postgres.go)
// refuses a tier whose ledger is in PostgreSQL: LEDGER_UNAVAILABLE, as
// when the database cannot be reached. Fail closed: never the file store
// in its place, never an empty ledger.
func openPostgres(dir string, t Tier, a Access, opts ledger.Options) (ledger.Store, error) {
	return nil, ledger.Errorf("LEDGER_UNAVAILABLE", "%s's ledger is in PostgreSQL (tier.json ledger_store), and this binary was built without the PostgreSQL store (-tags nopostgres): use a build with it", t.Tier)
}

// openDatabase refuses as openPostgres does: cp-ledger migrate and import
// need the PostgreSQL store.
func openDatabase(ctx context.Context, dir string, t Tier, ls LedgerStore, actor Actor) (database, error) {
	return nil, ledger.Errorf("LEDGER_UNAVAILABLE", "%s's ledger database cannot be opened: this binary was built without the PostgreSQL store (-tags nopostgres): use a build with it", t.Tier)
}
