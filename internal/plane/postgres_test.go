package plane_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/pgstore"
	"github.com/stretchr/testify/require"
)

// setStore rewrites dir's tier.json with ledger_store (raw JSON; "" removes it).
func setStore(t *testing.T, dir, store string) {
	t.Helper()
	p := filepath.Join(dir, "tier.json")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	if store == "" {
		delete(m, "ledger_store")
	} else {
		m["ledger_store"] = json.RawMessage(store)
	}
	b, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, b, 0o644))
}

func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, code, coded.Code(), "%v", err)
}

// TestTierLedgerInPostgres: a tier whose tier.json names PostgreSQL has
// its ledger there, chosen by the plane's one opener: appends (signed
// checkpoints, kept outside the database too) and verify go through it;
// its DSN comes only from the environment variable named; a database
// that cannot be reached is LEDGER_UNAVAILABLE, never an empty ledger.
func TestTierLedgerInPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	dir := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, dir, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	fileBefore, err := os.ReadFile(filepath.Join(dir, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	setStore(t, dir, `{"kind":"postgres","dsn_env":"CP_TEST_LEDGER_DSN","name":"governance-pg"}`)

	// No DSN in the environment: refused, exit 4, not the file store.
	t.Setenv("CP_TEST_LEDGER_DSN", "")
	_, err = plane.Record(ctx, dir, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "NOTE"})
	requireCode(t, err, pgstore.Unavailable)
	_, _, err = plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	requireCode(t, err, pgstore.Unavailable)

	// Unreachable: the same.
	t.Setenv("CP_TEST_LEDGER_DSN", "host=/nonexistent-cp-socket user=cp dbname=x sslmode=disable")
	_, err = plane.Record(ctx, dir, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "NOTE"})
	requireCode(t, err, pgstore.Unavailable)

	t.Setenv("CP_TEST_LEDGER_DSN", dsn)
	for range 3 {
		_, err = plane.Record(ctx, dir, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "NOTE"}, ledger.Draft{EventType: "NOTE"})
		require.NoError(t, err)
	}
	fileAfter, err := os.ReadFile(filepath.Join(dir, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	require.Equal(t, fileBefore, fileAfter, "the file ledger is not written")

	l, tier, err := plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer l.Close()
	require.IsType(t, &pgstore.Store{}, l)
	ks, err := trust.Load(dir)
	require.NoError(t, err)
	vs, err := trust.Verifiers(ks, trust.PurposeCheckpoint, "")
	require.NoError(t, err)
	rep, err := ledger.Verify(ctx, l, ledger.VerifyOptions{Verifiers: vs, Expect: true})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, 6, rep.Entries)

	// The checkpoint is also kept outside the database, signed.
	outside, err := os.ReadFile(plane.PostgresCheckpointPath(dir, tier))
	require.NoError(t, err)
	c, signed, err := ledger.OpenCheckpoint(outside, vs)
	require.NoError(t, err)
	require.True(t, signed)
	require.EqualValues(t, 6, c.Size)
	require.Equal(t, plane.Origin(tier, plane.LedgerPath(dir, tier)), c.Origin)
}

// TestTierLedgerStoreChecked: tier.json's ledger_store is checked like the
// rest of it; an unknown kind never falls back to the file store.
func TestTierLedgerStoreChecked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), dir, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	for _, bad := range []string{
		`{"kind":"mysql","dsn_env":"X","name":"g"}`,
		`{"kind":"postgres","dsn_env":"lower","name":"g"}`,
		`{"kind":"postgres","dsn_env":"X","name":"Bad Name"}`,
		`{"kind":"postgres","dsn_env":"","name":"g"}`,
		`{"kind":"postgres","dsn_env":"X","name":"g","dsn":"postgres://u:pw@h/db"}`,
		`{"kind":"file","dsn_env":"X"}`,
		`null`,
	} {
		setStore(t, dir, bad)
		_, err := plane.ReadTier(dir)
		requireCode(t, err, "TIER_INVALID")
	}
	setStore(t, dir, `{"kind":"file"}`)
	tier, err := plane.ReadTier(dir)
	require.NoError(t, err)
	require.False(t, tier.Postgres())
}
