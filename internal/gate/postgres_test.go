package gate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestG6Postgres: G6 verifies a tier's ledger in PostgreSQL through the
// plane's opener, accepts its checkpoint kept outside the database, names
// a tampered row by seq, and fails closed on a database it cannot reach.
func TestG6Postgres(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	tp := filepath.Join(root, "tier.json")
	b, err := os.ReadFile(tp)
	require.NoError(t, err)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	m["ledger_store"] = json.RawMessage(`{"kind":"postgres","dsn_env":"CP_TEST_LEDGER_DSN","name":"governance-pg"}`)
	b, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tp, b, 0o644))
	t.Setenv("CP_TEST_LEDGER_DSN", dsn)
	for range 3 {
		_, err = plane.Record(ctx, root, plane.Actor{Name: "tester"}, ledger.Draft{EventType: "NOTE"})
		require.NoError(t, err)
	}

	g6 := func() []string {
		t.Helper()
		r, err := G6(ctx, root)
		require.NoError(t, err)
		return findings([]Result{*r})
	}
	// tier.json changed by hand is TIER_UNRECORDED (cp-ledger migrate
	// records a change it makes); and the ledger it points at, which does
	// not hold HO3's history, does not hold the head HO2's GENESIS links
	// to either.
	require.Equal(t, []string{"G6 TIER_UNRECORDED tier.json", "G6 GENESIS_UNLINKED planes/ho2/ledger/workorder.jsonl"}, g6())

	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	_, err = c.Exec(ctx, `UPDATE cp_entries SET line = convert_to(replace(convert_from(line, 'UTF8'), '"NOTE"', '"NOPE"'), 'UTF8') WHERE seq = 1`)
	require.NoError(t, err)
	c.Close(ctx)
	r, err := G6(ctx, root)
	require.NoError(t, err)
	require.False(t, r.Passed)
	require.Equal(t, "TIER_UNRECORDED", r.Errors[0].Code)
	require.Equal(t, Finding{Code: "LEDGER_INVALID", Path: "postgres:governance-pg",
		Message: r.Errors[1].Message}, r.Errors[1])
	require.Contains(t, r.Errors[1].Message, "seq 1: HASH_MISMATCH")

	t.Setenv("CP_TEST_LEDGER_DSN", "host=/nonexistent-cp-socket user=cp dbname=x sslmode=disable")
	_, err = G6(ctx, root)
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, "LEDGER_UNAVAILABLE", coded.Code())
}
