package pgstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// fileLedger makes a file ledger of n entries in batches of varied sizes,
// with values canonical JSON must take care over, signed by k.
func fileLedger(t *testing.T, path string, n int, k *ledger.CheckpointKey) *ledger.Ledger {
	t.Helper()
	f, err := ledger.OpenWriter(path, ledger.Options{Actor: "tester", Checkpoint: k})
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	for i := 0; i < n; {
		drafts := make([]ledger.Draft, min(i%7+1, n-i))
		for j := range drafts {
			drafts[j] = ledger.Draft{EventType: "EV", SubmissionID: fmt.Sprint("S-", i+j), Reason: "é\u2028<&>\"\\",
				PromptsUsed: []string{"PRM-A"}, Metadata: map[string]any{"n": i + j, "f": 0.5, "op_id": fmt.Sprint("OP-", (i+j)%3)}}
		}
		_, err := f.Append(ctx, drafts)
		require.NoError(t, err)
		i += len(drafts)
	}
	return f
}

func requireSameFiles(t *testing.T, want, got string) {
	t.Helper()
	for _, p := range [][2]string{{want, got}, {strings.TrimSuffix(want, ".jsonl") + ".tlog", strings.TrimSuffix(got, ".jsonl") + ".tlog"}} {
		a, err := os.ReadFile(p[0])
		require.NoError(t, err)
		b, err := os.ReadFile(p[1])
		require.NoError(t, err)
		require.True(t, len(a) > 0 && string(a) == string(b), "%s and %s differ (%d and %d bytes)", p[0], p[1], len(a), len(b))
	}
}

// TestExportImportIdentical: a file ledger imported into PostgreSQL and
// exported again is the file ledger, .jsonl and .tlog byte for byte; the
// export of the file store itself is too. The imported ledger verifies
// with the checkpoint the import signed, kept outside the database.
func TestExportImportIdentical(t *testing.T) {
	dir := t.TempDir()
	k, vs := storetest.Key(t, "export/ho3/governance")
	src := filepath.Join(dir, "governance.jsonl")
	f := fileLedger(t, src, 1000, k)

	viaFile := filepath.Join(dir, "out", "file.jsonl")
	require.NoError(t, os.MkdirAll(filepath.Dir(viaFile), 0o755))
	ex, err := ledger.ExportFile(ctx, f, viaFile)
	require.NoError(t, err)
	require.EqualValues(t, 1000, ex.State.Size)
	require.NotNil(t, ex.Checkpoint)
	requireSameFiles(t, src, viaFile)

	dsn := pgtest.DB(t)
	outside := filepath.Join(dir, "pg.checkpoint")
	s := open(t, dsn, "governance", ledger.Options{Actor: "importer", Checkpoint: k}, outside)
	st, err := s.Import(ctx, f)
	require.NoError(t, err)
	fst, err := f.State(ctx)
	require.NoError(t, err)
	require.Equal(t, [3]any{fst.Size, fst.Head, fst.Root}, [3]any{st.Size, st.Head, st.Root})
	rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: true, Held: [][]byte{ex.Checkpoint}})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
	_, err = os.Stat(outside)
	require.NoError(t, err, "the import's checkpoint is kept outside the database")

	viaPG := filepath.Join(dir, "out", "pg.jsonl")
	ex, err = ledger.ExportFile(ctx, s, viaPG)
	require.NoError(t, err)
	require.Equal(t, [3]any{fst.Size, fst.Head, fst.Root}, [3]any{ex.State.Size, ex.State.Head, ex.State.Root})
	requireSameFiles(t, src, viaPG)

	// The export is a file ledger like any other: it verifies, and the
	// file store appends to it.
	e, err := ledger.OpenWriter(viaPG, ledger.Options{Actor: "later"})
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Append(ctx, []ledger.Draft{{EventType: "AFTER"}})
	require.NoError(t, err)
	rep, err = ledger.Verify(ctx, e, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)

	// An export never replaces a file.
	_, err = ledger.ExportFile(ctx, s, viaPG)
	storetest.RequireCode(t, err, "LEDGER_EXISTS")
	require.NoError(t, os.Remove(viaPG))
	_, err = ledger.ExportFile(ctx, s, viaPG) // its .tlog is still there
	storetest.RequireCode(t, err, "LEDGER_EXISTS")
}

// TestImportRefused: import loads only into an empty ledger, and only a
// source whose lines hold together; a refused import leaves the ledger as
// it was.
func TestImportRefused(t *testing.T) {
	dir := t.TempDir()
	k, _ := storetest.Key(t, "import/ho3/governance")
	f := fileLedger(t, filepath.Join(dir, "governance.jsonl"), 50, k)
	empty := func(s *Store) {
		t.Helper()
		st, err := s.State(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Size)
	}

	t.Run("not empty", func(t *testing.T) {
		dsn := pgtest.DB(t)
		s := open(t, dsn, "governance", ledger.Options{Actor: "x"}, "")
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "A"}})
		require.NoError(t, err)
		_, err = s.Import(ctx, f)
		storetest.RequireCode(t, err, "LEDGER_NOT_EMPTY")
		st, err := s.State(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Size)
	})
	t.Run("a row planted, head row empty", func(t *testing.T) {
		dsn := pgtest.DB(t)
		s := open(t, dsn, "governance", ledger.Options{Actor: "x"}, "")
		sql(t, dsn, `INSERT INTO cp_hashes (ledger, idx, hash) VALUES ('governance', 0, decode(repeat('ab', 32), 'hex'))`)
		_, err := s.Import(ctx, f)
		storetest.RequireCode(t, err, "LEDGER_NOT_EMPTY")
	})
	t.Run("every row cut, checkpoint outside kept", func(t *testing.T) {
		dsn := pgtest.DB(t)
		outside := filepath.Join(t.TempDir(), "c")
		s := open(t, dsn, "governance", ledger.Options{Actor: "x", Checkpoint: k}, outside)
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "A"}, {EventType: "B"}})
		require.NoError(t, err)
		sql(t, dsn, `DELETE FROM cp_entries; DELETE FROM cp_hashes; UPDATE cp_ledgers SET size = 0, head = '', checkpoint = NULL`)
		_, err = s.Import(ctx, f)
		storetest.RequireCode(t, err, ledger.CheckpointInconsistent)
		empty(s)
	})
	t.Run("a tampered source line", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "governance.jsonl"))
		require.NoError(t, err)
		bad := filepath.Join(t.TempDir(), "bad.jsonl")
		require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(b), `"S-17"`, `"S-71"`, 1)), 0o644))
		require.NoError(t, os.WriteFile(strings.TrimSuffix(bad, ".jsonl")+".tlog", mustRead(t, filepath.Join(dir, "governance.tlog")), 0o644))
		bf, err := ledger.OpenFileStore(bad)
		require.NoError(t, err)
		defer bf.Close()
		dsn := pgtest.DB(t)
		s := open(t, dsn, "governance", ledger.Options{Actor: "x"}, "")
		_, err = s.Import(ctx, bf)
		require.Error(t, err)
		require.Contains(t, err.Error(), "17")
		empty(s)
		n := 0
		require.NoError(t, s.Lines(ctx, 0, -1, func(int64, []byte) bool { n++; return true }))
		require.Zero(t, n, "nothing of a refused import is committed")
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}

// TestImportResumes: an import into a ledger that holds a prefix of the
// source (a migration that stopped after its copy, the source appended to
// since) loads the rest; a ledger holding anything else is refused.
func TestImportResumes(t *testing.T) {
	dir := t.TempDir()
	k, vs := storetest.Key(t, "resume/ho3/governance")
	f := fileLedger(t, filepath.Join(dir, "governance.jsonl"), 30, k)
	dsn := pgtest.DB(t)
	s := open(t, dsn, "governance", ledger.Options{Actor: "importer", Checkpoint: k}, filepath.Join(dir, "pg.checkpoint"))
	_, err := s.Import(ctx, f)
	require.NoError(t, err)
	_, err = s.Import(ctx, f) // the same again: nothing to add
	require.NoError(t, err)
	_, err = f.Append(ctx, []ledger.Draft{{EventType: "LATER"}, {EventType: "LATER"}})
	require.NoError(t, err)
	st, err := s.Import(ctx, f)
	require.NoError(t, err)
	require.EqualValues(t, 32, st.Size)
	rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: true})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)

	other := fileLedger(t, filepath.Join(dir, "other.jsonl"), 40, k)
	_, err = s.Import(ctx, other)
	storetest.RequireCode(t, err, "LEDGER_NOT_EMPTY")
	small := fileLedger(t, filepath.Join(dir, "small.jsonl"), 5, k)
	_, err = s.Import(ctx, small)
	storetest.RequireCode(t, err, "LEDGER_NOT_EMPTY")
}

// TestMoveOut: a ledger moved out refuses every later append, also the
// one of a writer that was waiting for the head row while it moved; its
// entries stay readable.
func TestMoveOut(t *testing.T) {
	dsn := pgtest.DB(t)
	k, _ := storetest.Key(t, "move/ho3/governance")
	s := open(t, dsn, "governance", ledger.Options{Actor: "a", Checkpoint: k}, "")
	w := open(t, dsn, "governance", ledger.Options{Actor: "b", Checkpoint: k}, "")
	_, err := s.Append(ctx, []ledger.Draft{{EventType: "A"}, {EventType: "B"}})
	require.NoError(t, err)
	waiting := make(chan error, 1)
	err = s.MoveOut(ctx, "file", func(st ledger.State) error {
		require.EqualValues(t, 2, st.Size)
		go func() {
			_, err := w.Append(ctx, []ledger.Draft{{EventType: "C"}})
			waiting <- err
		}()
		// Wait until the writer is blocked on the head row.
		for range 200 {
			var n int
			c, err := pgx.Connect(ctx, dsn)
			require.NoError(t, err)
			require.NoError(t, c.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&n))
			c.Close(ctx)
			if n > 0 {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return fmt.Errorf("the writer never waited")
	})
	require.NoError(t, err)
	storetest.RequireCode(t, <-waiting, "LEDGER_MOVED")
	_, err = s.Append(ctx, []ledger.Draft{{EventType: "D"}})
	storetest.RequireCode(t, err, "LEDGER_MOVED")
	_, _, err = s.Checkpoint(ctx, k.Origin)
	storetest.RequireCode(t, err, "LEDGER_MOVED")
	moved, err := s.Moved(ctx)
	require.NoError(t, err)
	require.Equal(t, "file", moved)
	st, err := s.State(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Size)
}
