package gate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
)

// TestG6Migrated: tiers moved to PostgreSQL by cp-ledger migrate pass G6
// (tier.json is the one the move recorded; GENESIS links read through
// the database on both sides; the moved file ledger's checkpoint and lock
// are not strays), and so do they once moved back. A tier.json edited
// afterwards is TIER_UNRECORDED, naming the move's entry.
func TestG6Migrated(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	actor := plane.Actor{Name: "tester"}
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: actor})
	require.NoError(t, err)
	t.Setenv("CP_TEST_LEDGER_DSN", pgtest.DB(t))
	g6 := func() []string {
		t.Helper()
		r, err := G6(ctx, root)
		require.NoError(t, err)
		return findings([]Result{*r})
	}
	ho2, err := plane.Dir(root, "ho2")
	require.NoError(t, err)
	for _, dir := range []string{root, ho2} {
		name := "governance"
		if dir == ho2 {
			name = "workorder-pg" // a name of its own: its checkpoint outside is another file
		}
		_, err := plane.Migrate(ctx, dir, plane.StorePostgres, plane.LedgerStore{DSNEnv: "CP_TEST_LEDGER_DSN", Name: name}, actor)
		require.NoError(t, err)
	}
	require.Empty(t, g6())
	_, err = plane.Record(ctx, root, actor, ledger.Draft{EventType: "NOTE"})
	require.NoError(t, err)
	require.Empty(t, g6())

	tp := filepath.Join(ho2, "tier.json")
	b, err := os.ReadFile(tp)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(tp, append(b, ' '), 0o644))
	r, err := G6(ctx, root)
	require.NoError(t, err)
	require.Equal(t, []string{"G6 TIER_UNRECORDED planes/ho2/tier.json"}, findings([]Result{*r}))
	require.Contains(t, r.Errors[0].Message, "LEDGER_MIGRATED")
	require.NoError(t, os.WriteFile(tp, b, 0o644))

	for _, dir := range []string{root, ho2} {
		_, err := plane.Migrate(ctx, dir, plane.StoreFile, plane.LedgerStore{}, actor)
		require.NoError(t, err)
	}
	require.Empty(t, g6())
}
