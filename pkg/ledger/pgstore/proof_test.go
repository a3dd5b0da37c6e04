package pgstore

import (
	"context"
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

// plain hides a store's ReadProof: ledger.ProveInclusion then reads it
// through State, ReadCheckpoint and ReadHashes, as it reads any store.
type plain struct{ ledger.Store }

// statements counts the statements sent on the connections it traces
// (a pgx.QueryTracer): each is one round trip.
type statements struct {
	mu  sync.Mutex
	sql []string
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sql = append(s.sql, d.SQL)
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sql
	s.sql = nil
	return out
}

// trace traces the connections Open makes until the test ends.
func trace(t *testing.T) *statements {
	st := &statements{}
	testTracer = st
	t.Cleanup(func() { testTracer = nil })
	return st
}

// TestProveReadsOnce: a reader whose ledger keeps its checkpoint outside
// the database proves an entry in one statement after connecting (Open
// defers its own questions into it), and the proof is the one
// ProveInclusion makes through the
// Store interface, for every entry, against the current tree, the
// checkpoint's and a tree size asked for; when the ledger has grown since
// the reader last read its head row, a second statement reads the hashes
// the new size needs.
func TestProveReadsOnce(t *testing.T) {
	dsn := pgtest.DB(t)
	k, vs := storetest.Key(t, "proof/ho3/governance")
	ckpt := filepath.Join(t.TempDir(), "governance.checkpoint")
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, ckpt)
	grow := func(n int) {
		for range n {
			_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: "S"}})
			require.NoError(t, err)
		}
	}
	grow(37)
	st := trace(t)
	r, err := Open(ctx, dsn, Options{Name: "governance", CheckpointFile: ckpt})
	require.NoError(t, err)
	defer r.Close()
	require.Empty(t, st.take(), "Open of a reader with the checkpoint kept outside: no statement")
	p, err := ledger.ProveInclusion(ctx, r, 11, 0, "proof")
	require.NoError(t, err)
	require.Equal(t, []string{openProofSQL}, st.take(), "its first proof: one statement, the opening's questions in it")
	require.NoError(t, ledger.VerifyInclusion(p, vs))

	// Without the copy outside, Open asks its questions itself.
	r2, err := Open(ctx, dsn, Options{Name: "governance"})
	require.NoError(t, err)
	defer r2.Close()
	require.Len(t, st.take(), 1, "Open of a reader without a checkpoint outside: one statement")
	p2, err := ledger.ProveInclusion(ctx, r2, 11, 0, "proof")
	require.NoError(t, err)
	require.Equal(t, []string{proofSQL}, st.take())
	require.Equal(t, p.Proof, p2.Proof)

	same := func(seq, size int64) {
		t.Helper()
		got, err := ledger.ProveInclusion(ctx, r, seq, size, "proof")
		require.NoError(t, err)
		want, err := ledger.ProveInclusion(ctx, plain{r}, seq, size, "proof")
		require.NoError(t, err)
		require.Equal(t, want, got, "seq %d tree %d", seq, size)
		if size == 0 {
			require.NoError(t, ledger.VerifyInclusion(got, vs))
		} else {
			require.NoError(t, ledger.VerifyInclusion(got, nil))
		}
	}
	for seq := range int64(37) {
		st.take()
		p, err := ledger.ProveInclusion(ctx, r, seq, 0, "proof")
		require.NoError(t, err)
		require.Len(t, st.take(), 1, "a proof of seq %d: one statement", seq)
		require.EqualValues(t, 37, p.TreeSize)
		same(seq, 0)
		for _, size := range []int64{seq + 1, 20, 37} {
			if size > seq {
				same(seq, size)
			}
		}
	}

	// The ledger grew, and the checkpoint outside the database with it:
	// the hashes the new size needs are read in a second statement.
	grow(30)
	st.take()
	p, err = ledger.ProveInclusion(ctx, r, 5, 0, "proof")
	require.NoError(t, err)
	require.EqualValues(t, 67, p.TreeSize)
	require.Len(t, st.take(), 2, "a ledger grown since the last read: two statements")
	require.NoError(t, ledger.VerifyInclusion(p, vs))
	for seq := range int64(67) {
		same(seq, 0)
	}

	// Out of range, as through the interface.
	_, err = ledger.ProveInclusion(ctx, r, 67, 0, "proof")
	require.ErrorContains(t, err, "cannot prove seq 67")
	_, err = ledger.ProveInclusion(ctx, r, 3, 68, "proof")
	require.ErrorContains(t, err, "cannot prove seq 3")
}

// TestProveMissingHash: a stored hash deleted from the database is a
// refusal to prove, never a proof over a zero hash.
func TestProveMissingHash(t *testing.T) {
	dsn := pgtest.DB(t)
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
	for range 9 {
		_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: "S"}})
		require.NoError(t, err)
	}
	r, err := Open(ctx, dsn, Options{Name: "governance"})
	require.NoError(t, err)
	defer r.Close()
	// seq 3's sibling, leaf 2, is in its proof.
	sql(t, dsn, `DELETE FROM cp_hashes WHERE ledger = 'governance' AND idx = $1`, tlog.StoredHashIndex(0, 2))
	_, err = ledger.ProveInclusion(ctx, r, 3, 0, "proof")
	require.ErrorContains(t, err, "missing")
	var coded interface{ Code() string }
	require.ErrorAs(t, err, &coded)
	require.Equal(t, ledger.TornTail, coded.Code())
	_, err = ledger.ProveInclusion(ctx, plain{r}, 3, 0, "proof")
	require.ErrorContains(t, err, "missing", "the same through the interface")
}

// TestProofIndexes: the stored hashes a proof asks for hold all that
// tlog's TreeHash and ProveRecord read, for every seq of trees up to 70
// entries and for large ones.
func TestProofIndexes(t *testing.T) {
	check := func(seq, n, size int64) {
		rec := recorder{}
		tlog.TreeHash(n, rec)
		tlog.TreeHash(size, rec)
		tlog.ProveRecord(size, seq, rec)
		rec[tlog.StoredHashIndex(0, seq)] = true
		got := map[int64]bool{}
		for _, x := range proofIndexes(seq, n, size) {
			got[x] = true
		}
		for x := range rec {
			require.True(t, got[x], "seq %d n %d size %d: stored hash %d", seq, n, size, x)
		}
	}
	for n := int64(1); n <= 70; n++ {
		for seq := range n {
			for size := seq + 1; size <= n; size++ {
				check(seq, n, size)
			}
		}
	}
	for _, n := range []int64{1_000_000, 1<<40 + 12345} {
		for _, seq := range []int64{0, 777_777, n - 1} {
			check(seq, n, n)
			check(seq, n, seq+1)
		}
	}
	require.Empty(t, proofIndexes(5, 0))
	require.Len(t, proofIndexes(5, 4), 1, "out of range: the root's only")
}

// TestProveOutsideUnreadable: a checkpoint copy outside the database that
// cannot be read (here a symbolic link, never followed) is left out of a
// proof, as ProveInclusion leaves out a ReadCheckpoint that fails: the
// proof is against the database's checkpoint, the same as through the
// interface.
func TestProveOutsideUnreadable(t *testing.T) {
	dsn := pgtest.DB(t)
	dir := t.TempDir()
	k, vs := storetest.Key(t, "outside/ho3/governance")
	w := open(t, dsn, "governance", ledger.Options{Actor: "tester", Checkpoint: k}, "")
	for range 12 {
		_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV", SubmissionID: "S"}})
		require.NoError(t, err)
	}
	target := filepath.Join(dir, "real.checkpoint")
	require.NoError(t, os.WriteFile(target, []byte("not a checkpoint\n"), 0o644))
	link := filepath.Join(dir, "governance.checkpoint")
	require.NoError(t, os.Symlink(target, link))
	r, err := Open(ctx, dsn, Options{Name: "governance", CheckpointFile: link})
	require.NoError(t, err)
	defer r.Close()
	got, err := ledger.ProveInclusion(ctx, r, 4, 0, "proof")
	require.NoError(t, err)
	want, err := ledger.ProveInclusion(ctx, plain{r}, 4, 0, "proof")
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.EqualValues(t, 12, got.TreeSize)
	require.NoError(t, ledger.VerifyInclusion(got, vs))
}

// TestDeferredOpen: a reader whose opening waits for its first read (a
// checkpoint kept outside) still fails closed on what Open would have
// refused: no schema, no such ledger, a schema newer than the tool. Each
// read reports it, the proof in its one statement too; nothing is read
// as an empty ledger, and a checkpoint is not written on a newer schema.
func TestDeferredOpen(t *testing.T) {
	k, _ := storetest.Key(t, "deferred/ho3/governance")
	outside := func(t *testing.T) string {
		// A checkpoint of a ledger of 3 entries, kept outside.
		path := filepath.Join(t.TempDir(), "governance.checkpoint")
		text, err := ledger.Checkpoint{Origin: "deferred/ho3/governance", Size: 3}.Sign(k.Signer)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, text, 0o644))
		return path
	}
	reads := map[string]func(s *Store) error{
		"prove":      func(s *Store) error { _, err := ledger.ProveInclusion(ctx, s, 1, 0, "o"); return err },
		"state":      func(s *Store) error { _, err := s.State(ctx); return err },
		"hashes":     func(s *Store) error { _, err := s.ReadHashes([]int64{0}); return err },
		"checkpoint": func(s *Store) error { _, err := s.ReadCheckpoint(); return err },
		"lines":      func(s *Store) error { return s.Lines(ctx, 0, -1, func(int64, []byte) bool { return true }) },
		"find":       func(s *Store) error { return s.Find(ctx, ledger.Query{}, func(*ledger.Entry) bool { return true }) },
		"verify":     func(s *Store) error { _, err := ledger.Verify(ctx, s, ledger.VerifyOptions{}); return err },
		"stored":     func(s *Store) error { _, err := s.ReadStoredHashes(ctx, 3); return err },
		"sign":       func(s *Store) error { _, _, err := s.Checkpoint(ctx, "o"); return err },
	}
	each := func(t *testing.T, dsn string, check func(t *testing.T, err error)) {
		path := outside(t)
		for name, read := range reads {
			t.Run(name, func(t *testing.T) {
				s, err := Open(ctx, dsn, Options{Name: "governance", CheckpointFile: path, Ledger: ledger.Options{Checkpoint: k}})
				require.NoError(t, err, "the opening waits for the first read")
				defer s.Close()
				check(t, read(s))
				check(t, read(s)) // and again: never settled by a failure
			})
		}
	}
	t.Run("no schema", func(t *testing.T) {
		each(t, pgtest.DB(t), func(t *testing.T, err error) { require.ErrorIs(t, err, os.ErrNotExist) })
	})
	t.Run("no such ledger", func(t *testing.T) {
		dsn := pgtest.DB(t)
		w := open(t, dsn, "other", ledger.Options{Actor: "tester"}, "")
		_, err := w.Append(ctx, []ledger.Draft{{EventType: "EV"}})
		require.NoError(t, err)
		each(t, dsn, func(t *testing.T, err error) { require.ErrorIs(t, err, os.ErrNotExist) })
	})
	t.Run("schema newer", func(t *testing.T) {
		dsn := pgtest.DB(t)
		w := open(t, dsn, "governance", ledger.Options{Actor: "tester"}, "")
		_, err := w.Append(ctx, []ledger.Draft{{EventType: "A"}, {EventType: "B"}, {EventType: "C"}})
		require.NoError(t, err)
		// A newer schema whose stored hashes a proof's statement cannot
		// read as it asks: still named for what it is.
		sql(t, dsn, `UPDATE cp_schema SET version = version + 1`)
		sql(t, dsn, `ALTER TABLE cp_hashes RENAME COLUMN hash TO digest`)
		each(t, dsn, func(t *testing.T, err error) { storetest.RequireCode(t, err, "LEDGER_SCHEMA_NEWER") })
		c, err := pgx.Connect(ctx, dsn)
		require.NoError(t, err)
		defer c.Close(ctx)
		var ckpt []byte
		require.NoError(t, c.QueryRow(ctx, `SELECT checkpoint FROM cp_ledgers WHERE name = 'governance'`).Scan(&ckpt))
		require.Nil(t, ckpt, "no checkpoint signed on a schema this tool does not know")
	})
}
