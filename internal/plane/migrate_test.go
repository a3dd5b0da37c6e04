package plane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// migratePlane bootstraps a plane with a few HO3 entries and points
// CP_TEST_LEDGER_DSN at a fresh database.
func migratePlane(t *testing.T) (root string, target plane.LedgerStore) {
	t.Helper()
	ctx := context.Background()
	root = filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: tester})
	require.NoError(t, err)
	for range 3 {
		_, err := plane.Record(ctx, root, tester, ledger.Draft{EventType: "NOTE"})
		require.NoError(t, err)
	}
	t.Setenv("CP_TEST_LEDGER_DSN", pgtest.DB(t))
	return root, plane.LedgerStore{DSNEnv: "CP_TEST_LEDGER_DSN", Name: "governance"}
}

// lines returns the lines of the tier's ledger, through the plane's opener.
func lines(t *testing.T, dir string) [][]byte {
	t.Helper()
	l, _, err := plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer l.Close()
	var out [][]byte
	require.NoError(t, l.Lines(context.Background(), 0, -1, func(_ int64, line []byte) bool {
		out = append(out, append([]byte(nil), line...))
		return true
	}))
	return out
}

// verifies requires the tier's ledger to verify, as G6 reads it.
func verifies(t *testing.T, dir string) ledger.Report {
	t.Helper()
	l, tier, err := plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer l.Close()
	ks, err := trust.Load(dir)
	require.NoError(t, err)
	vs, err := trust.Verifiers(ks, trust.PurposeCheckpoint, "")
	require.NoError(t, err)
	rep, err := ledger.Verify(context.Background(), l, ledger.VerifyOptions{Verifiers: vs, Expect: tier.PlaneName != ""})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
	return rep
}

// TestMigrateRoundTrip: HO3's ledger moves to PostgreSQL and back, each
// move recorded in the ledger (LEDGER_MIGRATED, with the hash of the
// tier.json it leads to), every entry byte for byte, the tools appending
// wherever tier.json says; the store left behind takes no more appends.
func TestMigrateRoundTrip(t *testing.T) {
	ctx := context.Background()
	root, target := migratePlane(t)
	file := filepath.Join(root, "ledger", "governance.jsonl")
	before := lines(t, root)
	tierBefore, err := os.ReadFile(filepath.Join(root, "tier.json"))
	require.NoError(t, err)

	m, err := plane.Migrate(ctx, root, plane.StorePostgres, target, tester)
	require.NoError(t, err)
	require.Equal(t, plane.StoreFile, m.From)
	require.EqualValues(t, len(before), m.Seq, "the record follows the entries moved")
	require.EqualValues(t, len(before)+1, m.Entries)
	tier, err := plane.ReadTier(root)
	require.NoError(t, err)
	require.True(t, tier.Postgres())
	tb, err := os.ReadFile(filepath.Join(root, "tier.json"))
	require.NoError(t, err)
	require.Equal(t, plane.SHA256(tb), m.TierSHA256)
	_, err = os.Stat(file)
	require.ErrorIs(t, err, os.ErrNotExist, "the file ledger is gone")
	_, err = os.Stat(plane.PostgresCheckpointPath(root, tier))
	require.NoError(t, err, "the checkpoint kept outside the database")
	after := lines(t, root)
	require.Equal(t, before, after[:len(before)], "every entry moved byte for byte")
	rec, err := ledger.ParseLine(after[len(before)])
	require.NoError(t, err)
	require.Equal(t, "LEDGER_MIGRATED", rec.EventType)
	require.Equal(t, m.TierSHA256, rec.Metadata["tier_sha256"])
	require.Equal(t, "postgres", rec.Metadata["to"])
	verifies(t, root)

	_, err = plane.Record(ctx, root, tester, ledger.Draft{EventType: "NOTE"})
	require.NoError(t, err)
	require.Len(t, lines(t, root), len(before)+2, "appends go to the database now")
	again, err := plane.Migrate(ctx, root, plane.StorePostgres, target, tester)
	require.NoError(t, err)
	require.True(t, again.Unchanged)
	_, err = plane.Migrate(ctx, root, plane.StorePostgres, plane.LedgerStore{DSNEnv: "CP_TEST_LEDGER_DSN", Name: "other"}, tester)
	requireCode(t, err, "MIGRATE_REFUSED")

	inPG := lines(t, root)
	back, err := plane.Migrate(ctx, root, plane.StoreFile, plane.LedgerStore{}, tester)
	require.NoError(t, err)
	require.EqualValues(t, len(inPG)+1, back.Entries)
	tier, err = plane.ReadTier(root)
	require.NoError(t, err)
	require.False(t, tier.Postgres())
	tierAfter, err := os.ReadFile(filepath.Join(root, "tier.json"))
	require.NoError(t, err)
	require.Equal(t, tierBefore, tierAfter, "back to the tier.json the GENESIS recorded")
	require.Equal(t, plane.SHA256(tierBefore), back.TierSHA256)
	out := lines(t, root)
	require.Equal(t, inPG, out[:len(inPG)])
	verifies(t, root)
	_, err = plane.Record(ctx, root, tester, ledger.Draft{EventType: "NOTE"})
	require.NoError(t, err)
	verifies(t, root)

	// The database ledger takes no more appends, from anyone.
	s, err := pgstore.Open(ctx, os.Getenv("CP_TEST_LEDGER_DSN"), pgstore.Options{Name: "governance", Writable: true})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Append(ctx, []ledger.Draft{{EventType: "LATE"}})
	requireCode(t, err, "LEDGER_MOVED")
	// And a name holds one ledger once.
	_, err = plane.Migrate(ctx, root, plane.StorePostgres, target, tester)
	requireCode(t, err, "LEDGER_NOT_EMPTY")
}

var errKilled = errors.New("killed")

// TestMigrateStopped: a move stopped after any of its steps (as a kill
// leaves it: locks released, the transaction rolled back) is finished by
// running it again, with the tools appending in between wherever they
// still may; nothing acknowledged is lost, and the ledger verifies.
func TestMigrateStopped(t *testing.T) {
	ctx := context.Background()
	for _, to := range []string{plane.StorePostgres, plane.StoreFile} {
		for step := 2; step <= 5; step++ {
			t.Run(fmt.Sprintf("%s/after-step-%d", to, step), func(t *testing.T) {
				root, target := migratePlane(t)
				if to == plane.StoreFile {
					_, err := plane.Migrate(ctx, root, plane.StorePostgres, target, tester)
					require.NoError(t, err)
				}
				plane.SetStopAfter(func(s int) error {
					if s == step {
						return errKilled
					}
					return nil
				})
				_, err := plane.Migrate(ctx, root, to, target, tester)
				plane.SetStopAfter(nil)
				require.ErrorContains(t, err, errKilled.Error())

				// The tools go on: before step 5 where they were, after it
				// refused (fail closed) until the move is finished.
				_, err = plane.Record(ctx, root, tester, ledger.Draft{EventType: "BETWEEN"})
				if step < 5 {
					require.NoError(t, err)
				} else {
					require.Error(t, err)
				}
				acked := lines(t, root)

				m, err := plane.Migrate(ctx, root, to, target, tester)
				require.NoError(t, err)
				require.Equal(t, step == 5, m.Resumed)
				tier, err := plane.ReadTier(root)
				require.NoError(t, err)
				require.Equal(t, to == plane.StorePostgres, tier.Postgres())
				out := lines(t, root)
				for i, l := range acked {
					require.True(t, bytes.Equal(l, out[i]), "entry %d", i)
				}
				verifies(t, root)
				_, err = plane.Record(ctx, root, tester, ledger.Draft{EventType: "AFTER"})
				require.NoError(t, err)
				verifies(t, root)
			})
		}
	}
}
