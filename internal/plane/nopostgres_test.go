//go:build nopostgres

package plane_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

// TestNoPostgresRefuses: a binary built without the PostgreSQL store
// (-tags nopostgres; `make test` runs this) refuses a tier whose ledger is
// in PostgreSQL, for reading and for appending, even with a DSN set:
// LEDGER_UNAVAILABLE, never the file ledger in its place.
func TestNoPostgresRefuses(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, dir, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	file := filepath.Join(dir, "ledger", "governance.jsonl")
	before, err := os.ReadFile(file)
	require.NoError(t, err)
	setStore(t, dir, `{"kind":"postgres","dsn_env":"CP_TEST_LEDGER_DSN","name":"governance-pg"}`)
	t.Setenv("CP_TEST_LEDGER_DSN", "host=/nonexistent-cp-socket user=cp dbname=x sslmode=disable")

	_, err = plane.Record(ctx, dir, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "NOTE"})
	requireCode(t, err, "LEDGER_UNAVAILABLE")
	require.ErrorContains(t, err, "-tags nopostgres")
	for _, a := range []plane.Access{plane.ForReading, plane.ForCheckpoint, plane.ForAppend} {
		_, _, err = plane.OpenLedger(dir, a, plane.Actor{Name: "tester"})
		requireCode(t, err, "LEDGER_UNAVAILABLE")
	}
	after, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Equal(t, before, after, "the file ledger is not written")

	// A tier of kind file is untouched by the build.
	setStore(t, dir, `{"kind":"file"}`)
	_, err = plane.Record(ctx, dir, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "NOTE"})
	require.NoError(t, err)
}
