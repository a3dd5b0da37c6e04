package pgstore

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// seqsOf returns the seqs Find answers for q, and those a scan of every
// row held to q gives.
func seqsOf(t *testing.T, s ledger.Store, q ledger.Query) (got, want []int64) {
	t.Helper()
	require.NoError(t, s.Find(ctx, q, func(e *ledger.Entry) bool { got = append(got, e.Seq); return true }))
	require.NoError(t, s.Find(ctx, ledger.Query{}, func(e *ledger.Entry) bool {
		if q.Selects(e) {
			want = append(want, e.Seq)
		}
		return true
	}))
	return got, want
}

func count(t *testing.T, dsn, query string) int64 {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	var n int64
	require.NoError(t, c.QueryRow(ctx, query).Scan(&n))
	return n
}

// Find by id and by changed path are SQL lookups (the primary key for an
// id that names its seq, the id column for one that does not, cp_changed
// for a path), from schema lookupsSince on; an older database gets them,
// for the rows it holds, when a writer migrates it, and until then a
// reader scans for them. Either way the answer is a scan's.
func TestLookups(t *testing.T) {
	dsn := pgtest.DB(t)
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	var ds []ledger.Draft
	for i := range 60 {
		md := map[string]any{"i": float64(i)}
		if i%7 == 3 {
			p := fmt.Sprintf("lib/a%d.py", i%3)
			// The same path twice in one set: one row.
			md[ledger.ChangedKey] = ledger.Changed{Added: []string{p}, Removed: []string{p, "lib/z.py"}}.Metadata()
		}
		ds = append(ds, ledger.Draft{EventType: "INSTALLED", SubmissionID: "PKG-A", Metadata: md})
	}
	es, err := w.Append(ctx, ds)
	require.NoError(t, err)
	require.Zero(t, count(t, dsn, `SELECT count(*) FROM cp_entries WHERE id IS NOT NULL`), "every id names its seq")
	require.EqualValues(t, 2*9, count(t, dsn, `SELECT count(*) FROM cp_changed`))

	queries := func(foreign string) []ledger.Query {
		qs := []ledger.Query{{ID: foreign}, {ID: "LED-0000000000000000"}, {ID: "LED-1ff" + strings.Repeat("0", 13)},
			{Changed: "lib/z.py"}, {Changed: "lib/a1.py", From: 20}, {Changed: "lib/none.py"}, {Changed: "lib/a2.py", EventTypes: []string{"NOTE"}}}
		for _, i := range []int{0, 1, 17, 59} {
			qs = append(qs, ledger.Query{ID: es[i].ID}, ledger.Query{ID: es[i].ID, From: 30})
		}
		return qs
	}
	check := func(t *testing.T, lookups bool, foreign string) {
		st := trace(t)
		r, err := Open(ctx, dsn, Options{Name: "governance"})
		require.NoError(t, err)
		defer r.Close()
		for _, q := range queries(foreign) {
			st.take()
			got, want := seqsOf(t, r, q)
			require.Equal(t, want, got, "%+v", q)
			sqls := strings.Join(st.take(), "\n")
			switch {
			case !lookups:
			case q.ID != "":
				require.Contains(t, sqls, "id = $", "%+v", q)
			default:
				require.Contains(t, sqls, "cp_changed", "%+v", q)
			}
		}
	}
	t.Run("schema 3", func(t *testing.T) { check(t, true, es[5].ID) })

	// The database as the schema before lookupsSince left it, with an
	// entry whose id names no seq (an older tool's random id).
	require.Equal(t, SchemaVersion, lookupsSince, "the lookups' step is the last one: this test undoes it alone")
	foreign := "LED-f00dfeedfacecafe"
	sql(t, dsn, `UPDATE cp_entries SET line = convert_to(replace(convert_from(line, 'UTF8'), $1, $2), 'UTF8') WHERE seq = 5`, es[5].ID, foreign)
	sql(t, dsn, `ALTER TABLE cp_entries DROP COLUMN id; DROP TABLE cp_changed`)
	sql(t, dsn, `UPDATE cp_schema SET version = $1`, lookupsSince-1)
	t.Run("older schema read", func(t *testing.T) { check(t, false, foreign) })
	w.Close()
	w = open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	require.EqualValues(t, SchemaVersion, count(t, dsn, `SELECT version FROM cp_schema`))
	require.EqualValues(t, 1, count(t, dsn, `SELECT count(*) FROM cp_entries WHERE id IS NOT NULL`), "the foreign id, backfilled")
	require.EqualValues(t, 2*9, count(t, dsn, `SELECT count(*) FROM cp_changed`), "the changed paths, backfilled")
	t.Run("migrated", func(t *testing.T) { check(t, true, foreign) })
	got, _ := seqsOf(t, w, ledger.Query{ID: foreign})
	require.Equal(t, []int64{5}, got)
	_, err = w.Append(ctx, []ledger.Draft{{EventType: "ROLLED_BACK", Metadata: map[string]any{ledger.ChangedKey: ledger.Changed{Modified: []string{"lib/z.py"}}.Metadata()}}})
	require.NoError(t, err)
	got, want := seqsOf(t, w, ledger.Query{Changed: "lib/z.py"})
	require.Equal(t, want, got)
	require.Len(t, got, 10)
}

// A reader whose opening is deferred (its ledger keeps its checkpoint
// outside, as every plane ledger does) asks Find's first question with
// the lookups too: the schema's version is known by the time the
// statement is built, not after (a Find by id or changed path that
// scanned the whole ledger for its first answer, cp-trace's only one).
func TestLookupsDeferredReader(t *testing.T) {
	dsn := pgtest.DB(t)
	ckpt := filepath.Join(t.TempDir(), "governance.checkpoint")
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, ckpt)
	md := map[string]any{ledger.ChangedKey: ledger.Changed{Added: []string{"lib/a.py"}}.Metadata()}
	es, err := w.Append(ctx, []ledger.Draft{{EventType: "INSTALLED"}, {EventType: "INSTALLED", Metadata: md}, {EventType: "NOTE"}})
	require.NoError(t, err)
	_, _, err = w.Checkpoint(ctx, "test/governance")
	require.NoError(t, err)
	for _, q := range []ledger.Query{{ID: es[1].ID}, {Changed: "lib/a.py"}} {
		st := trace(t)
		r, err := Open(ctx, dsn, Options{Name: "governance", CheckpointFile: ckpt})
		require.NoError(t, err)
		require.True(t, r.deferred, "the reader's opening is deferred (the checkpoint is outside)")
		st.take()
		var got []int64
		require.NoError(t, r.Find(ctx, q, func(e *ledger.Entry) bool { got = append(got, e.Seq); return true }))
		require.Equal(t, []int64{1}, got)
		sqls := strings.Join(st.take(), "\n")
		if q.ID != "" {
			require.Contains(t, sqls, "id = $", "%+v: the first Find of a deferred reader uses the id lookup", q)
		} else {
			require.Contains(t, sqls, "cp_changed", "%+v: the first Find of a deferred reader uses cp_changed", q)
		}
		r.Close()
	}
}
