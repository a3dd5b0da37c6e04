package pgstore

import (
	"testing"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// keyColumns returns how many columns cp_hashes' primary key has, and
// how many of them are keys (the rest are INCLUDEd).
func keyColumns(t *testing.T, dsn string) (all, keys int) {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	require.NoError(t, c.QueryRow(ctx, `SELECT indnatts, indnkeyatts FROM pg_index WHERE indexrelid = 'cp_hashes_pkey'::regclass AND indisprimary`).Scan(&all, &keys))
	return all, keys
}

// TestMigrateCoveringKey: a database of schema 2 (the stored hashes'
// key without the hash) is migrated by the next writer to open it:
// version 3, the key covering the hash, the ledger unchanged and
// appendable, its proofs the same.
func TestMigrateCoveringKey(t *testing.T) {
	dsn := pgtest.DB(t)
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	for range 5 {
		_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: "S"}, {EventType: "EV", SubmissionID: "T"}})
		require.NoError(t, err)
	}
	all, keys := keyColumns(t, dsn)
	require.Equal(t, [2]int{3, 2}, [2]int{all, keys}, "a new database: the key covers the hash")
	before, err := ledger.ProveInclusion(ctx, w, 3, 0, "o")
	require.NoError(t, err)
	w.Close()

	// Back to schema 2, as a database made by the tool before (step 4's
	// lookups undone too).
	sql(t, dsn, `DROP TABLE cp_changed`)
	sql(t, dsn, `ALTER TABLE cp_entries DROP COLUMN id`)
	sql(t, dsn, `ALTER TABLE cp_hashes DROP CONSTRAINT cp_hashes_pkey, ADD CONSTRAINT cp_hashes_pkey PRIMARY KEY (ledger, idx)`)
	sql(t, dsn, `UPDATE cp_schema SET version = 2`)
	all, keys = keyColumns(t, dsn)
	require.Equal(t, [2]int{2, 2}, [2]int{all, keys})

	// A reader reads schema 2 as it is, and changes nothing.
	r, err := Open(ctx, dsn, Options{Name: "governance"})
	require.NoError(t, err)
	got, err := ledger.ProveInclusion(ctx, r, 3, 0, "o")
	require.NoError(t, err)
	require.Equal(t, before, got)
	r.Close()
	all, _ = keyColumns(t, dsn)
	require.Equal(t, 2, all, "a reader migrates nothing")

	w = open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	all, keys = keyColumns(t, dsn)
	require.Equal(t, [2]int{3, 2}, [2]int{all, keys}, "migrated by a writer")
	var v int
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	require.NoError(t, c.QueryRow(ctx, `SELECT version FROM cp_schema`).Scan(&v))
	require.Equal(t, SchemaVersion, v)
	require.Equal(t, 4, SchemaVersion)
	got, err = ledger.ProveInclusion(ctx, w, 3, 0, "o")
	require.NoError(t, err)
	require.Equal(t, before, got)
	_, err = w.Append(ctx, []ledger.Draft{{EventType: "AFTER"}})
	require.NoError(t, err)
	rep, err := ledger.Verify(ctx, w, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, rep.Issues)
	require.EqualValues(t, 11, rep.Entries)
}

// TestMigrateOnceCurrent: a writer opening a database whose schema is
// current asks one question (its version), takes no lock and opens no
// transaction; one opening a new database creates the schema.
func TestMigrateOnceCurrent(t *testing.T) {
	dsn := pgtest.DB(t)
	st := trace(t)
	w := open(t, dsn, "governance", ledger.Options{}, "")
	require.Greater(t, len(st.take()), 3, "a new database: the locked path")
	w.Close()
	w = open(t, dsn, "governance", ledger.Options{}, "")
	require.Equal(t, []string{`SELECT version FROM cp_schema`}, st.take())
	w.Close()
}
