package pgstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var ctx = context.Background()

// open opens ledger name in the database dsn for appending.
func open(t testing.TB, dsn, name string, opts ledger.Options, ckptFile string) *Store {
	t.Helper()
	s, err := Open(ctx, dsn, Options{Name: name, Ledger: opts, Writable: true, CheckpointFile: ckptFile})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// sql runs a statement on the database dsn, as someone with its password
// (an attacker, an operator) would.
func sql(t testing.TB, dsn, stmt string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer c.Close(ctx)
	_, err = c.Exec(ctx, stmt, args...)
	require.NoError(t, err)
}

func TestContract(t *testing.T) {
	dsn := pgtest.DB(t)
	n := 0
	storetest.Run(t, func(t *testing.T, opts ledger.Options) ledger.Store {
		n++
		return open(t, dsn, fmt.Sprintf("l%d", n), opts, filepath.Join(t.TempDir(), "l.checkpoint"))
	})
}

// TestSameAsFileStore: the lines of a PostgreSQL ledger, as a file, make
// the file store's tree: the same stored hashes (its .tlog, byte for
// byte), root, proofs and signed checkpoint.
func TestSameAsFileStore(t *testing.T) {
	dsn := pgtest.DB(t)
	k, vs := storetest.Key(t, "same/ho3/governance")
	s := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, "")
	for i := range 37 {
		drafts := make([]ledger.Draft, i%5+1)
		for j := range drafts {
			drafts[j] = ledger.Draft{EventType: "EV", SubmissionID: fmt.Sprint("S-", i), Metadata: map[string]any{"j": j}}
		}
		_, err := s.Append(ctx, drafts)
		require.NoError(t, err)
	}
	path := filepath.Join(t.TempDir(), "governance.jsonl")
	var data []byte
	require.NoError(t, s.Lines(ctx, 0, -1, func(_ int64, line []byte) bool {
		data = append(append(data, line...), '\n')
		return true
	}))
	require.NoError(t, os.WriteFile(path, data, 0o644))
	f, err := ledger.OpenWriter(path, ledger.Options{})
	require.NoError(t, err)
	defer f.Close()
	_, err = f.Append(ctx, nil) // rebuilds X.tlog from the lines
	require.NoError(t, err)

	pst, err := s.State(ctx)
	require.NoError(t, err)
	fst, err := f.State(ctx)
	require.NoError(t, err)
	require.Equal(t, fst.Size, pst.Size)
	require.Equal(t, fst.Head, pst.Head)
	require.Equal(t, fst.Root, pst.Root)

	tl, err := os.ReadFile(filepath.Join(filepath.Dir(path), "governance.tlog"))
	require.NoError(t, err)
	idx := make([]int64, tlog.StoredHashCount(pst.Size))
	for i := range idx {
		idx[i] = int64(i)
	}
	hs, err := s.ReadHashes(idx)
	require.NoError(t, err)
	var pb []byte
	for _, h := range hs {
		pb = append(pb, h[:]...)
	}
	require.Equal(t, tl, pb, "stored hashes byte-identical to the file store's .tlog")

	for _, seq := range []int64{0, 1, 50, pst.Size - 1} {
		pp, err := ledger.ProveInclusion(ctx, s, seq, pst.Size, "same")
		require.NoError(t, err)
		fp, err := ledger.ProveInclusion(ctx, f, seq, pst.Size, "same")
		require.NoError(t, err)
		require.Equal(t, fp, pp)
	}
	pc, err := ledger.ProveConsistency(ctx, s, 10, pst.Size)
	require.NoError(t, err)
	fc, err := ledger.ProveConsistency(ctx, f, 10, pst.Size)
	require.NoError(t, err)
	require.Equal(t, fc, pc)

	// The signed checkpoint the database holds is the one the file store
	// signs over the same tree with the same key.
	stored, err := s.ReadCheckpoint()
	require.NoError(t, err)
	want, err := ledger.Checkpoint{Origin: k.Origin, Size: fst.Size, Root: fst.Root}.Sign(k.Signer)
	require.NoError(t, err)
	require.Equal(t, want, stored)

	prep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs})
	require.NoError(t, err)
	frep, err := ledger.Verify(ctx, f, ledger.VerifyOptions{})
	require.NoError(t, err)
	prep.Checkpoint, frep.Checkpoint = nil, nil // the file has none
	require.Equal(t, frep, prep)
}

// TestConcurrentWriters: 8 writers, each on its own connection, 500
// appends each: no entry lost, no fork, a ledger that verifies.
func TestConcurrentWriters(t *testing.T) {
	dsn := pgtest.DB(t)
	k, vs := storetest.Key(t, "conc/ho3/governance")
	ckpt := filepath.Join(t.TempDir(), "governance.checkpoint")
	const writers, each = 8, 500
	stores := make([]*Store, writers)
	for i := range stores {
		stores[i] = open(t, dsn, "governance", ledger.Options{Actor: fmt.Sprint("w", i), Checkpoint: k}, ckpt)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	acked := make([][]ledger.Entry, writers)
	for i, s := range stores {
		wg.Go(func() {
			for j := range each {
				es, err := s.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: fmt.Sprintf("W%d-%d", i, j)}})
				if err != nil {
					errs <- err
					return
				}
				acked[i] = append(acked[i], es...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	st, err := stores[0].State(ctx)
	require.NoError(t, err)
	require.EqualValues(t, writers*each, st.Size)
	// Every acknowledged entry is there, at its seq, byte for byte.
	bySeq := map[int64]string{}
	require.NoError(t, stores[0].Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		e, err := ledger.ParseLine(line)
		require.NoError(t, err)
		bySeq[seq] = e.EntryHash
		return true
	}))
	for _, es := range acked {
		require.Len(t, es, each)
		for _, e := range es {
			require.Equal(t, e.EntryHash, bySeq[e.Seq], "seq %d", e.Seq)
		}
	}
	rep, err := ledger.Verify(ctx, stores[0], ledger.VerifyOptions{Verifiers: vs, Expect: true})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, writers*each, rep.Entries)
	outside, err := os.ReadFile(ckpt)
	require.NoError(t, err)
	c, _, err := ledger.OpenCheckpoint(outside, vs)
	require.NoError(t, err)
	require.EqualValues(t, writers*each, c.Size, "the checkpoint outside is the latest")
}

// tampered returns a fresh signed ledger of n entries in its own
// database, with its checkpoint kept outside, and its verifiers.
func tampered(t *testing.T, n int) (dsn string, s *Store, vs []ledger.VerifyOptions) {
	t.Helper()
	dsn = pgtest.DB(t)
	k, v := storetest.Key(t, "tamper/ho3/governance")
	s = open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, filepath.Join(t.TempDir(), "governance.checkpoint"))
	for i := range n {
		_, err := s.Append(ctx, []ledger.Draft{{EventType: "EV", Reason: "r", Metadata: map[string]any{"i": i}}})
		require.NoError(t, err)
	}
	return dsn, s, []ledger.VerifyOptions{{Verifiers: v, Expect: true}}
}

// TestTamperFound: what someone with the database's password does to its
// rows, verify finds and names by seq, as with files.
func TestTamperFound(t *testing.T) {
	for name, tc := range map[string]struct {
		stmt string
		seq  int64
		code string
		// refused: the next append is refused too (an append checks the
		// head and the checkpoint, not every entry: verify does).
		refused bool
	}{
		"update a line": {`UPDATE cp_entries SET line = convert_to(replace(convert_from(line, 'UTF8'), '"r"', '"R"'), 'UTF8') WHERE seq = 7`, 7, ledger.HashMismatch, false},
		"update a stored leaf hash": {fmt.Sprintf(`UPDATE cp_hashes SET hash = decode(repeat('ab', 32), 'hex') WHERE idx = %d`,
			tlog.StoredHashIndex(0, 5)), 5, ledger.MerkleMismatch, false},
		"delete a row": {`DELETE FROM cp_entries WHERE seq = 4`, 4, ledger.SeqGap, false},
		"cut the tail, head row and checkpoint rolled back": {`DELETE FROM cp_entries WHERE seq >= 15;
			UPDATE cp_ledgers SET size = 15, head = (SELECT entry_hash FROM cp_entries WHERE seq = 14), checkpoint = NULL`, 15, ledger.CheckpointInconsistent, true},
		"cut the tail, head row kept": {`DELETE FROM cp_entries WHERE seq >= 15`, 15, ledger.CheckpointInconsistent, true},
	} {
		t.Run(name, func(t *testing.T) {
			dsn, s, vo := tampered(t, 20)
			rep, err := ledger.Verify(ctx, s, vo[0])
			require.NoError(t, err)
			require.True(t, rep.Valid, "%+v", rep.Issues)
			sql(t, dsn, tc.stmt)
			rep, err = ledger.Verify(ctx, s, vo[0])
			require.NoError(t, err)
			require.False(t, rep.Valid)
			require.Equal(t, tc.code, rep.Issues[0].Code, "%+v", rep.Issues)
			require.Equal(t, tc.seq, *rep.FirstBadSeq, "%+v", rep.Issues)
			if tc.refused {
				_, err = s.Append(ctx, []ledger.Draft{{EventType: "AFTER"}})
				require.Error(t, err, "no append builds on a cut tail")
			}
		})
	}
}

// TestDroppedConnection: the backend is terminated after the batch's rows
// are written, before the commit: the append fails, nothing of it is
// committed, and the next writer goes on from the last acknowledged
// entry.
func TestDroppedConnection(t *testing.T) {
	dsn := pgtest.DB(t)
	k, vs := storetest.Key(t, "drop/ho3/governance")
	s := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, filepath.Join(t.TempDir(), "c"))
	_, err := s.Append(ctx, []ledger.Draft{{EventType: "A"}, {EventType: "B"}})
	require.NoError(t, err)
	pid := s.conn.PgConn().PID()
	beforeCommit = func() { sql(t, dsn, `SELECT pg_terminate_backend($1)`, pid) }
	t.Cleanup(func() { beforeCommit = nil })
	es, err := s.Append(ctx, []ledger.Draft{{EventType: "C"}, {EventType: "D"}, {EventType: "E"}})
	beforeCommit = nil
	storetest.RequireCode(t, err, Unavailable)
	require.Empty(t, es)

	s2 := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, filepath.Join(t.TempDir(), "c"))
	st, err := s2.State(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.Size, "nothing of the failed batch committed")
	n := 0
	require.NoError(t, s2.Lines(ctx, 0, -1, func(int64, []byte) bool { n++; return true }))
	require.Equal(t, 2, n)
	_, err = s2.ReadHashes([]int64{tlog.StoredHashCount(2)})
	storetest.RequireCode(t, err, ledger.TornTail) // no stored hash of the failed batch either
	_, err = s2.Append(ctx, []ledger.Draft{{EventType: "C"}})
	require.NoError(t, err)
	rep, err := ledger.Verify(ctx, s2, ledger.VerifyOptions{Verifiers: vs, Expect: true})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, 3, rep.Entries)
	// The store whose connection dropped fails closed from then on.
	_, err = s.State(ctx)
	storetest.RequireCode(t, err, Unavailable)
}

// An unreachable database is LEDGER_UNAVAILABLE, never an empty ledger;
// the DSN's password never appears in the message.
func TestUnreachable(t *testing.T) {
	_, err := Open(ctx, "host=/nonexistent-pgstore-socket user=cp password=hunter2 dbname=x sslmode=disable", Options{Name: "governance"})
	storetest.RequireCode(t, err, Unavailable)
	require.NotContains(t, err.Error(), "hunter2")
	_, err = Open(ctx, "postgres://cp:hunter2@[bad", Options{Name: "governance"})
	storetest.RequireCode(t, err, Unavailable)
	require.NotContains(t, err.Error(), "hunter2")
}

// A reader needs the ledger to exist; a writer creates the schema once,
// and a schema newer than the tool is refused.
func TestSchema(t *testing.T) {
	dsn := pgtest.DB(t)
	_, err := Open(ctx, dsn, Options{Name: "governance"})
	require.ErrorIs(t, err, os.ErrNotExist)
	w := open(t, dsn, "governance", ledger.Options{}, "")
	_ = open(t, dsn, "governance", ledger.Options{}, "") // migrating again is a no-op
	_, err = Open(ctx, dsn, Options{Name: "governance"})
	require.ErrorIs(t, err, os.ErrNotExist, "no entry yet: no ledger")
	_, err = w.Append(ctx, []ledger.Draft{{EventType: "A"}})
	require.NoError(t, err)
	r, err := Open(ctx, dsn, Options{Name: "governance"})
	require.NoError(t, err)
	_, err = r.Append(ctx, []ledger.Draft{{EventType: "B"}})
	storetest.RequireCode(t, err, "INTERNAL")
	r.Close()
	sql(t, dsn, `UPDATE cp_schema SET version = version + 1`)
	_, err = Open(ctx, dsn, Options{Name: "governance", Writable: true})
	storetest.RequireCode(t, err, "LEDGER_SCHEMA_NEWER")
	_, err = Open(ctx, dsn, Options{Name: "governance"})
	storetest.RequireCode(t, err, "LEDGER_SCHEMA_NEWER")
}

// A stored hash deleted from the database: verify cannot build the tree
// and fails closed (TORN_TAIL, naming the hash), and no append builds on
// a tree with a hole in its right edge.
func TestDeletedStoredHash(t *testing.T) {
	dsn, s, vo := tampered(t, 20)
	sql(t, dsn, `DELETE FROM cp_hashes WHERE idx = $1`, tlog.StoredHashIndex(0, 9))
	_, err := ledger.Verify(ctx, s, vo[0])
	storetest.RequireCode(t, err, ledger.TornTail)
	require.Contains(t, err.Error(), fmt.Sprintf("stored hash %d missing", tlog.StoredHashIndex(0, 9)))
	sql(t, dsn, `DELETE FROM cp_hashes WHERE idx = $1`, tlog.StoredHashIndex(4, 0))
	_, err = s.Append(ctx, []ledger.Draft{{EventType: "AFTER"}})
	storetest.RequireCode(t, err, ledger.TornTail)
}
