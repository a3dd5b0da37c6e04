package ledger

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// findChecked is FindChecked's answer as tags, from q.From with the root
// of the first q.From entries given (or not).
func findChecked(t testing.TB, l *Ledger, q Query, withRoot bool) ([]string, error) {
	st, err := l.State(ctx)
	require.NoError(t, err)
	var root *tlog.Hash
	if withRoot {
		h, err := tlog.TreeHash(q.From, l)
		require.NoError(t, err)
		root = &h
	}
	var tags []string
	err = FindChecked(ctx, l, q, root, st, func(e *Entry) { tags = append(tags, tag(e)) })
	return tags, err
}

// TestFindCheckedIsTheScan: over random ledgers, FindChecked gives what a
// read of every line gives, for random queries from random seqs, with and
// without the root of the entries before; with the index and without.
func TestFindCheckedIsTheScan(t *testing.T) {
	for seed := range 4 {
		r := rand.New(rand.NewPCG(uint64(seed), 34))
		path := filepath.Join(t.TempDir(), "x.jsonl")
		randomLedger(t, r, path, 200+r.IntN(300))
		ids := ledgerIDs(t, path)
		for _, indexed := range []bool{true, false} {
			if !indexed {
				require.NoError(t, os.Remove(indexFile(path)))
			}
			l, err := Open(path, Options{})
			require.NoError(t, err)
			for range 40 {
				q := randomQuery(r, ids)
				q.From = r.Int64N(int64(len(ids)) + 1)
				got, err := findChecked(t, l, q, r.IntN(2) == 0)
				require.NoError(t, err)
				require.Equal(t, scanWhole(t, l, q), got, "query %+v", q)
			}
			require.NoError(t, l.Close())
		}
	}
}

// TestFindCheckedRefuses: what Find answers around (an edited line it
// skips or scans past, an index that leaves entries out) FindChecked
// refuses, LEDGER_INVALID: a line edited in place in the range read; a
// stored leaf edited to match it; a stored node of the tree before the
// range edited, when its root is given; a state that counts more entries
// than the file holds. An edit before the range, which its tree does not
// read, is not its business (the root given still holds).
func TestFindCheckedRefuses(t *testing.T) {
	setup := func(t *testing.T) (string, *Ledger) {
		path := filepath.Join(t.TempDir(), "x.jsonl")
		randomLedger(t, rand.New(rand.NewPCG(5, 34)), path, 120)
		l, err := Open(path, Options{})
		require.NoError(t, err)
		t.Cleanup(func() { l.Close() })
		return path, l
	}
	refused := func(t *testing.T, err error) {
		t.Helper()
		var le *Error
		require.True(t, errors.As(err, &le), "refused: %v", err)
		require.Equal(t, "LEDGER_INVALID", le.Code(), "%v", err)
	}
	// editLine renames the event type of entry seq in place (same length).
	editLine := func(t *testing.T, path string, seq int) {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := bytes.SplitAfter(b, []byte("\n"))
		i := bytes.Index(lines[seq], []byte(`"event_type":"`)) + len(`"event_type":"`)
		lines[seq][i] ^= 1
		require.NoError(t, os.WriteFile(path, bytes.Join(lines, nil), 0o644))
	}
	t.Run("line edited in the range", func(t *testing.T) {
		path, l := setup(t)
		editLine(t, path, 100)
		_, err := findChecked(t, l, Query{From: 90}, true)
		refused(t, err)
		// Find scans past it (its answer differs, and nothing says so).
		require.NoError(t, l.Find(ctx, Query{From: 90}, func(*Entry) bool { return true }))
	})
	t.Run("line and its stored leaf edited", func(t *testing.T) {
		path, l := setup(t)
		editLine(t, path, 100)
		// The line's entry_hash and stored leaf made to match its new
		// content: its own checks pass; the tree's does not.
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := bytes.SplitAfter(b, []byte("\n"))
		e, err := ParseLine(bytes.TrimSuffix(lines[100], []byte("\n")))
		require.NoError(t, err)
		line, leaf, err := encode(nil, e)
		require.NoError(t, err)
		lines[100] = append(bytes.TrimSuffix(line, []byte("\n")), '\n')
		require.NoError(t, os.WriteFile(path, bytes.Join(lines, nil), 0o644))
		hashes, _, _ := SidePaths(path)
		f, err := os.OpenFile(hashes, os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteAt(leaf[:], tlog.StoredHashIndex(0, 100)*tlog.HashSize)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		_, err = findChecked(t, l, Query{From: 90}, false)
		refused(t, err)
		require.Contains(t, err.Error(), "do not make the ledger's tree")
	})
	t.Run("the tree before the range changed", func(t *testing.T) {
		path, l := setup(t)
		root, err := tlog.TreeHash(64, l)
		require.NoError(t, err)
		hashes, _, _ := SidePaths(path)
		f, err := os.OpenFile(hashes, os.O_RDWR, 0)
		require.NoError(t, err)
		var h [tlog.HashSize]byte
		_, err = f.ReadAt(h[:], tlog.StoredHashIndex(6, 0)*tlog.HashSize)
		require.NoError(t, err)
		h[0] ^= 1
		_, err = f.WriteAt(h[:], tlog.StoredHashIndex(6, 0)*tlog.HashSize)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		st, err := l.State(ctx)
		require.NoError(t, err)
		refused(t, FindChecked(ctx, l, Query{From: 64}, &root, st, func(*Entry) {}))
	})
	t.Run("a line before the range edited", func(t *testing.T) {
		path, l := setup(t)
		editLine(t, path, 10)
		got, err := findChecked(t, l, Query{From: 64}, true)
		require.NoError(t, err)
		require.Equal(t, scanWhole(t, l, Query{From: 64}), got)
	})
	t.Run("fewer lines than the state counts", func(t *testing.T) {
		_, l := setup(t)
		st, err := l.State(ctx)
		require.NoError(t, err)
		st.Size += 2
		refused(t, FindChecked(ctx, l, Query{From: 100}, nil, st, func(*Entry) {}))
	})
	t.Run("a root that is not the tree's", func(t *testing.T) {
		_, l := setup(t)
		st, err := l.State(ctx)
		require.NoError(t, err)
		var wrong tlog.Hash
		refused(t, FindChecked(ctx, l, Query{From: 50}, &wrong, st, func(*Entry) {}))
		st.Root[0] ^= 1
		refused(t, FindChecked(ctx, l, Query{From: 50}, nil, st, func(*Entry) {}))
	})
	t.Run("from outside the ledger", func(t *testing.T) {
		_, l := setup(t)
		st, err := l.State(ctx)
		require.NoError(t, err)
		refused(t, FindChecked(ctx, l, Query{From: st.Size + 1}, nil, st, func(*Entry) {}))
		refused(t, FindChecked(ctx, l, Query{From: -1}, nil, st, func(*Entry) {}))
		n := 0
		require.NoError(t, FindChecked(ctx, l, Query{From: st.Size}, nil, st, func(*Entry) { n++ }))
		require.Zero(t, n, "an empty range")
	})
}

// FuzzLastLines: for any bytes in a ledger's file, lastLines (every
// State's read of the tail) returns the last k complete lines of them and
// the offset past the last newline, as splitting the whole file would, or
// an error: never a panic, never a line that is not one.
func FuzzLastLines(f *testing.F) {
	f.Add([]byte("a\nb\nc"), uint8(1))
	f.Add([]byte("\n\n\n"), uint8(2))
	f.Add([]byte("no newline"), uint8(1))
	f.Add(bytes.Repeat([]byte("x\n"), 5000), uint8(3))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		kk := int(k%8) + 1
		path := filepath.Join(dir, "tail")
		require.NoError(t, os.WriteFile(path, data, 0o644))
		fh, err := os.Open(path)
		require.NoError(t, err)
		defer fh.Close()
		lines, end, err := lastLines(fh, int64(len(data)), kk)
		require.NoError(t, err, "no line here is longer than MaxLine")
		i := bytes.LastIndexByte(data, '\n')
		require.Equal(t, int64(i+1), end)
		if i < 0 {
			require.Empty(t, lines)
			return
		}
		want := bytes.Split(data[:i], []byte("\n"))
		if len(want) > kk {
			want = want[len(want)-kk:]
		}
		require.Equal(t, len(want), len(lines))
		for j := range want {
			require.Equal(t, string(want[j]), string(lines[j]))
		}
	})
}
