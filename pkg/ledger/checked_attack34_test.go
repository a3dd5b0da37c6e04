package ledger

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// TestAttack34CheckedReadWhileAppending: writers (each with a handle of
// its own, as processes have) append batches, each growing the index
// (and rebuilding it with more buckets now and then), and a crashing
// writer now and then leaves a torn tail (half a line, under the lock),
// which the next append removes; meanwhile readers read the state and
// FindChecked from random seqs with the root of the entries before
// (with and without it). An honest ledger is never LEDGER_INVALID, and a
// read gives every entry of the range once.
func TestAttack34CheckedReadWhileAppending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	randomLedger(t, rand.New(rand.NewPCG(1, 34)), path, 50)
	done := make(chan struct{})
	errs := make(chan error, 64)
	var wg, readers sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			l, err := OpenWriter(path, Options{Actor: "tester", LockTimeout: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			for range 300 {
				var ds []Draft
				for range 1 + r.IntN(30) {
					ds = append(ds, Draft{EventType: randomTypes[r.IntN(len(randomTypes))], SubmissionID: fmt.Sprintf("S-%d", r.IntN(9))})
				}
				if _, err := l.Append(ctx, ds); err != nil {
					errs <- fmt.Errorf("append: %w", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		// The crashing writer: half a line written at the end, under
		// the lock, as an append that died.
		defer wg.Done()
		for range 20 {
			l, err := OpenWriter(path, Options{Actor: "tester", LockTimeout: 30 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			if err := l.lock(ctx, true, 30*time.Second); err != nil {
				l.Close()
				errs <- err
				return
			}
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.WriteString(`{"actor":"tester","decision":"","entry_hash":"00`)
				f.Close()
			}
			l.unlock()
			l.Close()
			if err != nil {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var reads atomic.Int64
	for rd := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			r := rand.New(rand.NewPCG(uint64(rd), 2))
			l, err := Open(path, Options{})
			if err != nil {
				errs <- err
				return
			}
			defer l.Close()
			for {
				select {
				case <-done:
					return
				default:
				}
				st, err := l.State(ctx)
				if err != nil {
					errs <- fmt.Errorf("state: %w", err)
					return
				}
				from := r.Int64N(st.Size + 1)
				var root *tlog.Hash
				if r.IntN(2) == 0 {
					h, err := tlog.TreeHash(from, l)
					if err != nil {
						errs <- err
						return
					}
					root = &h
				}
				n := int64(0)
				if err := FindChecked(ctx, l, Query{From: from}, root, st, func(e *Entry) {
					if e.Seq != from+n {
						errs <- fmt.Errorf("entry %d where %d was due", e.Seq, from+n)
					}
					n++
				}); err != nil {
					errs <- fmt.Errorf("FindChecked from %d of %d: %w", from, st.Size, err)
					return
				}
				if n != st.Size-from {
					errs <- fmt.Errorf("FindChecked from %d of %d gave %d entries", from, st.Size, n)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	during := reads.Load()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d checked reads, %d of them while appending", reads.Load(), during)
	require.Positive(t, during)
}

// TestAttack34HugeTornTail: bytes after the last complete line are a
// torn tail, which every reader tolerates (an append that died). Anyone
// who can write the ledger can make it huge at no cost (a sparse
// extension: truncate -s +100G). The ledger's state (every call's
// first read, under the budget lock), a reader's or a writer's, must still
// answer in bounded time and memory: no line is longer than MaxLine, so
// no search for the last newline need read more than MaxLine+1 bytes
// back. lastLines reads backwards in chunks of at most 1 MiB, each
// prepended to all it read (a copy of everything so far): O(n^2/1 MiB),
// and all n bytes held (16 MiB: 0.5 s, 64 MiB: 3.6 s, 256 MiB: 41 s,
// measured; 100 GiB: days, and out of memory first): FAILED at f5f7013.
// Since, lastLines reads no more than MaxLine+1 bytes back for the last
// newline, keeps none of the torn tail, and a longer tail is
// LEDGER_INVALID.
func TestAttack34HugeTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	randomLedger(t, rand.New(rand.NewPCG(3, 4)), path, 20)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, st.Size()+MaxLine+(64<<20)))
	for name, read := range map[string]func() error{
		"State": func() error {
			l, err := Open(path, Options{})
			if err != nil {
				return err
			}
			defer l.Close()
			_, err = l.State(ctx)
			return err
		},
		"a writer's State": func() error {
			l, err := OpenWriter(path, Options{Actor: "tester"})
			if err != nil {
				return err
			}
			defer l.Close()
			_, err = l.State(ctx)
			return err
		},
	} {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- read() }()
		select {
		case err := <-done:
			t.Logf("%s over a %d MiB torn tail: %v in %v", name, (MaxLine+(64<<20))>>20, err, time.Since(start))
			// Longer than any line: not a torn append, and refused.
			var le *Error
			require.ErrorAs(t, err, &le, name)
			require.Equal(t, "LEDGER_INVALID", le.Code(), name)
		case <-time.After(5 * time.Second):
			t.Errorf("%s over a %d MiB torn tail: no answer in 5 s (it reads the whole tail back, quadratically)", name, (MaxLine+(64<<20))>>20)
			<-done // leave nothing running
		}
	}
}

// TestAttack34IndexNotAFile: where the index belongs, a FIFO (opening it
// would block until a writer comes), a link to /dev/zero or to a copy of
// the honest index, a directory, or a sparse file of 1 TiB whose header
// (CRC right) claims 2^40 postings over the honest ones: Lines from any
// seq answers at once with the file's lines, and FindChecked with the
// scan's entries.
func TestAttack34IndexNotAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	randomLedger(t, rand.New(rand.NewPCG(9, 34)), path, 200)
	lines, _ := fileLines(t, path)
	honest, err := os.ReadFile(IndexPath(path))
	require.NoError(t, err)
	ids := ledgerIDs(t, path)
	for name, plant := range map[string]func(p string) error{
		"a FIFO":              func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"a link to /dev/zero": func(p string) error { return os.Symlink("/dev/zero", p) },
		"a link to a copy of the index": func(p string) error {
			c := filepath.Join(t.TempDir(), "copy.idx")
			if err := os.WriteFile(c, honest, 0o644); err != nil {
				return err
			}
			return os.Symlink(c, p)
		},
		"a directory": func(p string) error { return os.Mkdir(p, 0o755) },
		"a sparse file claiming 2^32 postings": func(p string) error {
			idx := bytes.Clone(honest)
			editHeader(idx, func(h *idxHeader) { h.postings = 1 << 32 })
			if err := os.WriteFile(p, idx, 0o644); err != nil {
				return err
			}
			return os.Truncate(p, postingAt(idxBuckets(idx), 1<<32))
		},
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.RemoveAll(IndexPath(path)))
			require.NoError(t, plant(IndexPath(path)))
			done := make(chan struct{})
			go func() {
				defer close(done)
				l, err := Open(path, Options{})
				if !assert.NoError(t, err) {
					return
				}
				defer l.Close()
				r := rand.New(rand.NewPCG(1, 2))
				for range 20 {
					from := r.Int64N(int64(len(lines)) + 1)
					want := int(from)
					assert.NoError(t, l.Lines(ctx, from, -1, func(seq int64, line []byte) bool {
						assert.Equal(t, int64(want), seq)
						assert.Equal(t, string(lines[want]), string(line))
						want++
						return true
					}))
					assert.Equal(t, len(lines), want)
					q := randomQuery(r, ids)
					q.From = from
					got, err := findChecked(t, l, q, true)
					assert.NoError(t, err)
					assert.Equal(t, scanWhole(t, l, q), got)
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s where the index belongs: Lines blocked", name)
			}
		})
	}
}

// TestAttack34DuplicatedLine: a copy of a line inserted in the file (after
// its original, or at the end, or at the start), the index left as it
// was or removed: FindChecked from any seq either refuses
// (LEDGER_INVALID) or gives exactly what it gave over the honest file
// (the entries of the tree the stored hashes make), never another set:
// with the copy at the end, those of them in the tree of the state, which
// counts up to the copy's seq.
func TestAttack34DuplicatedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	r := rand.New(rand.NewPCG(11, 34))
	randomLedger(t, r, path, 120)
	lines, offs := fileLines(t, path)
	honest, err := os.ReadFile(path)
	require.NoError(t, err)
	honestIdx, err := os.ReadFile(IndexPath(path))
	require.NoError(t, err)
	ids := ledgerIDs(t, path)
	type probe struct {
		q    Query
		root bool
		want []string
	}
	var probes []probe
	l, err := Open(path, Options{})
	require.NoError(t, err)
	for range 60 {
		q := randomQuery(r, ids)
		q.From = r.Int64N(int64(len(lines)) + 1)
		root := r.IntN(2) == 0
		want, err := findChecked(t, l, q, root)
		require.NoError(t, err)
		probes = append(probes, probe{q, root, want})
	}
	require.NoError(t, l.Close())
	for _, k := range []int{0, 1, len(lines) / 2, len(lines) - 2, len(lines) - 1} {
		for _, where := range []string{"after", "start", "end"} {
			for _, withIdx := range []bool{true, false} {
				dup := append(bytes.Clone(lines[k]), '\n')
				var b []byte
				switch where {
				case "after":
					at := offs[k] + int64(len(lines[k])) + 1
					b = append(append(bytes.Clone(honest[:at]), dup...), honest[at:]...)
				case "start":
					b = append(bytes.Clone(dup), honest...)
				case "end":
					b = append(bytes.Clone(honest), dup...)
				}
				require.NoError(t, os.WriteFile(path, b, 0o644))
				if withIdx {
					require.NoError(t, os.WriteFile(IndexPath(path), honestIdx, 0o644))
				} else {
					os.Remove(IndexPath(path))
				}
				l, err := Open(path, Options{})
				require.NoError(t, err)
				st, serr := l.State(ctx)
				for _, p := range probes {
					if serr != nil {
						break
					}
					var root *tlog.Hash
					if p.root {
						h, err := tlog.TreeHash(p.q.From, l)
						require.NoError(t, err)
						root = &h
					}
					if p.q.From > st.Size {
						continue
					}
					var got []string
					err := FindChecked(ctx, l, p.q, root, st, func(e *Entry) { got = append(got, tag(e)) })
					if err != nil {
						var le *Error
						require.ErrorAs(t, err, &le)
						require.Equal(t, "LEDGER_INVALID", le.Code(), "%v", err)
						continue
					}
					// The entries of the tree st names: a copy at the end
					// makes the state count up to the copy's seq (a
					// rollback: TestAttack34OldLineAtEnd on branch s34/attack).
					var want []string
					for _, w := range p.want {
						var seq int64
						fmt.Sscanf(w, "%d:", &seq)
						if seq < st.Size {
							want = append(want, w)
						}
					}
					require.Equal(t, want, got, "line %d copied %s (index %t): query %+v", k, where, withIdx, p.q)
				}
				require.NoError(t, l.Close())
			}
		}
	}
}
