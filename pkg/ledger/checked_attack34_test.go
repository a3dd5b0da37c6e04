package ledger

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// Session 34's attacks on Lines' seek through the index (lineAt) and on
// FindChecked.

// fileLines are the complete lines of the ledger file at path and their
// offsets.
func fileLines(t testing.TB, path string) (lines [][]byte, offs []int64) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var off int64
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, b[:i])
		offs = append(offs, off)
		off += int64(i) + 1
		b = b[i+1:]
	}
	return lines, offs
}

// indexLie is an edit of an index file's bytes (CRCs recomputed: anyone
// who can write the file can).
type indexLie func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string

func idxBuckets(idx []byte) int { return int(binary.LittleEndian.Uint64(idx[32:])) }
func idxPostings(idx []byte) int64 {
	return int64(binary.LittleEndian.Uint64(idx[40:]))
}

// editPosting rewrites posting i of idx with f's change, its CRC
// recomputed.
func editPosting(idx []byte, i int64, f func(p *posting)) {
	at := postingAt(idxBuckets(idx), i)
	p, err := decodePosting(idx[at : at+idxPostingSize])
	if err != nil {
		panic(err)
	}
	f(&p)
	p.put(idx[at : at+idxPostingSize])
}

// editHeader rewrites idx's header with f's change, its CRC recomputed.
func editHeader(idx []byte, f func(h *idxHeader)) {
	h, err := decodeHeader(idx[:idxHeaderSize])
	if err != nil {
		panic(err)
	}
	f(&h)
	copy(idx, h.encode())
}

var indexLies = map[string]indexLie{
	"posting points at another entry's line": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		j := r.IntN(len(lines))
		editPosting(idx, r.Int64N(idxPostings(idx)), func(p *posting) { p.off, p.len = offs[j], uint32(len(lines[j])) })
		return "other line"
	},
	"posting points into the middle of a line": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		j := r.IntN(len(lines))
		k := 1 + r.IntN(max(len(lines[j])-1, 1))
		editPosting(idx, r.Int64N(idxPostings(idx)), func(p *posting) {
			p.off = offs[j] + int64(k)
			p.len = uint32(len(lines[j]) - k)
		})
		return "middle"
	},
	"posting past dataEnd": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		end := offs[len(offs)-1] + int64(len(lines[len(lines)-1])) + 1
		editPosting(idx, r.Int64N(idxPostings(idx)), func(p *posting) { p.off = end + r.Int64N(1<<20) })
		return "past end"
	},
	"posting's seq changed": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		editPosting(idx, r.Int64N(idxPostings(idx)), func(p *posting) { p.seq = r.Int64N(int64(len(lines))) })
		return "seq"
	},
	"posting names another entry, consistently": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		j := r.IntN(len(lines))
		editPosting(idx, r.Int64N(idxPostings(idx)), func(p *posting) { p.seq, p.off, p.len = int64(j), offs[j], uint32(len(lines[j])) })
		return "named"
	},
	"postings shuffled": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		n := idxPostings(idx)
		b := idxBuckets(idx)
		for range 1 + r.IntN(8) {
			i, j := r.Int64N(n), r.Int64N(n)
			a, c := idx[postingAt(b, i):postingAt(b, i)+idxPostingSize], idx[postingAt(b, j):postingAt(b, j)+idxPostingSize]
			var tmp [idxPostingSize]byte
			copy(tmp[:], a)
			copy(a, c)
			copy(c, tmp[:])
		}
		return "shuffled"
	},
	"header: fewer entries (a stale index), dataEnd and leaf to match": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		e := 1 + r.IntN(len(lines))
		editHeader(idx, func(h *idxHeader) {
			h.entries, h.dataEnd = uint64(e), uint64(offs[e-1]+int64(len(lines[e-1]))+1)
			var err error
			h.leaf, err = leafOfLine(lines[e-1])
			if err != nil {
				panic(err)
			}
		})
		return "stale"
	},
	"header: dataEnd at another line's end": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		j := r.IntN(len(lines))
		editHeader(idx, func(h *idxHeader) { h.dataEnd = uint64(offs[j] + int64(len(lines[j])) + 1) })
		return "dataEnd"
	},
	"header: more entries than postings say": func(r *rand.Rand, idx []byte, lines [][]byte, offs []int64) string {
		editHeader(idx, func(h *idxHeader) { h.entries += uint64(1 + r.IntN(5)) })
		return "entries+"
	},
}

// leafOfLine is the leaf hash of a checked line (its own seq).
func leafOfLine(line []byte) (tlog.Hash, error) {
	e, err := ParseLine(line)
	if err != nil {
		return tlog.Hash{}, err
	}
	return checkedLeaf(line, e.Seq)
}

// TestAttack34LinesSeekLies: an index whose postings or header lie (CRCs
// recomputed) about where an entry's line is: Lines from any seq gives
// exactly the file's lines from there, each with its own seq (a lie is
// never used: lineAt checks the line it seeks to), and FindChecked gives
// what a read of every line gives.
func TestAttack34LinesSeekLies(t *testing.T) {
	for seed := range uint64(3) {
		r := rand.New(rand.NewPCG(seed, 3434))
		path := filepath.Join(t.TempDir(), "x.jsonl")
		randomLedger(t, r, path, 150+r.IntN(200))
		lines, offs := fileLines(t, path)
		honest, err := os.ReadFile(IndexPath(path))
		require.NoError(t, err)
		ids := ledgerIDs(t, path)
		// The honest index is used: a seek lands on the entry asked for.
		l, err := Open(path, Options{})
		require.NoError(t, err)
		off, at := l.lineAt(int64(len(lines) / 2))
		require.Equal(t, offs[len(lines)/2], off)
		require.Equal(t, int64(len(lines)/2), at)
		require.NoError(t, l.Close())
		for name, lie := range indexLies {
			for range 12 {
				idx := bytes.Clone(honest)
				for range 1 + r.IntN(3) {
					lie(r, idx, lines, offs)
				}
				require.NoError(t, os.WriteFile(IndexPath(path), idx, 0o644))
				l, err := Open(path, Options{})
				require.NoError(t, err)
				for range 10 {
					from := r.Int64N(int64(len(lines)) + 2)
					to := int64(-1)
					if r.IntN(2) == 0 {
						to = from + r.Int64N(int64(len(lines))+2-from)
					}
					want := int(from)
					require.NoError(t, l.Lines(ctx, from, to, func(seq int64, line []byte) bool {
						require.Equal(t, int64(want), seq, "%s: seq of the line read", name)
						require.Less(t, want, len(lines), "%s: a line past the file's", name)
						require.Equal(t, string(lines[want]), string(line), "%s: line %d", name, seq)
						want++
						return true
					}), name)
					end := len(lines)
					if to >= 0 {
						end = min(int(to), end)
					}
					require.Equal(t, max(end, int(from)), want, "%s: Lines(%d, %d) stopped early", name, from, to)

					q := randomQuery(r, ids)
					q.From = min(from, int64(len(lines)))
					got, err := findChecked(t, l, q, r.IntN(2) == 0)
					require.NoError(t, err, name)
					require.Equal(t, scanWhole(t, l, q), got, "%s: query %+v", name, q)
				}
				require.NoError(t, l.Close())
			}
		}
	}
}
