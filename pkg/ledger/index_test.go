package ledger

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// randomLedger appends n entries in random batches with a few event
// types (two of them typedSubjectEvents), subjects, op ids, package ids
// and paths.
func randomLedger(t testing.TB, r *rand.Rand, path string, n int) {
	l, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	defer l.Close()
	for done := 0; done < n; {
		k := min(1+r.IntN(40), n-done)
		var ds []Draft
		for range k {
			md := map[string]any{"i": float64(done)}
			if r.IntN(3) == 0 {
				md["op_id"] = fmt.Sprintf("OP-%d", r.IntN(5))
			}
			if r.IntN(4) == 0 {
				md["package_id"] = fmt.Sprintf("PKG-%d", r.IntN(3))
			}
			if r.IntN(5) == 0 {
				md["path"] = fmt.Sprintf("a/%d.txt", r.IntN(3))
			}
			if r.IntN(6) == 0 {
				md["_work_order_id"] = fmt.Sprintf("WO-20261206-00%d", r.IntN(3))
			}
			if r.IntN(7) == 0 {
				md["op_id"] = float64(r.IntN(3)) // not a string: not indexed
			}
			switch r.IntN(12) {
			case 0:
				md[ChangedKey] = Changed{Added: []string{fmt.Sprintf("f/%d", r.IntN(4))}, Removed: []string{fmt.Sprintf("f/%d", r.IntN(4))}}.Metadata()
			case 1:
				md[ChangedKey] = map[string]any{"modified": []any{fmt.Sprintf("f/%d", r.IntN(4)), "f/\u2028\"x"}}
			case 2:
				md[ChangedKey] = map[string]any{"added": []any{"f/1", 7.0}} // not a changed set: not indexed
			case 3:
				md[ChangedKey] = "f/1" // nor this
			}
			sub := ""
			if r.IntN(4) != 0 {
				sub = fmt.Sprintf("S-%d", r.IntN(20))
			}
			ds = append(ds, Draft{EventType: randomTypes[r.IntN(len(randomTypes))], SubmissionID: sub, Metadata: md})
			done++
		}
		_, err := l.Append(ctx, ds)
		require.NoError(t, err)
	}
}

var randomTypes = []string{"EV0", "EV1", "EV2", "EV3", "EV4", "EV5", "WO_CREATED", "WO_STARTED"}

func randomQuery(r *rand.Rand, ids []string) Query {
	var q Query
	switch r.IntN(9) {
	case 6:
		q.Changed = fmt.Sprintf("f/%d", r.IntN(5))
	case 7:
		q.Changed = "f/\u2028\"x"
	case 8:
		q.ID = "LED-0000000000000000"
		if len(ids) > 0 && r.IntN(4) != 0 {
			q.ID = ids[r.IntN(len(ids))]
		}
	case 0:
		q.EventTypes = []string{fmt.Sprintf("EV%d", r.IntN(7))}
	case 1:
		q.EventTypes = []string{fmt.Sprintf("EV%d", r.IntN(7)), fmt.Sprintf("EV%d", r.IntN(7))}
	case 2:
		q.Subject = fmt.Sprintf("S-%d", r.IntN(22))
		if r.IntN(2) == 0 {
			// Types all in typedSubjectEvents (their keys), unless an
			// EV type joins them below (the subject's key).
			q.EventTypes = []string{"WO_STARTED", "WO_CREATED", "WO_EXPIRED"}[:1+r.IntN(3)]
		}
	case 3:
		q.OpID = fmt.Sprintf("OP-%d", r.IntN(6))
	case 4:
		q.Metadata = map[string]string{"package_id": fmt.Sprintf("PKG-%d", r.IntN(4))}
	case 5:
		q.Metadata = map[string]string{"path": fmt.Sprintf("a/%d.txt", r.IntN(4))}
		if r.IntN(2) == 0 {
			q.Metadata = map[string]string{"_work_order_id": fmt.Sprintf("WO-20261206-00%d", r.IntN(4))}
		}
	}
	if r.IntN(3) == 0 {
		q.EventTypes = append(q.EventTypes, fmt.Sprintf("EV%d", r.IntN(6)))
	}
	if r.IntN(3) == 0 {
		q.From = int64(r.IntN(200))
	}
	return q
}

// findBoth returns the seqs Find returns and those a scan returns, and
// whether Find could use the index.
func findBoth(t testing.TB, path string, q Query) (got, want []string, indexed bool) {
	l, err := Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	if x := l.openIndex(); x != nil {
		indexed = true
		x.close()
	}
	require.NoError(t, l.Find(ctx, q, func(e *Entry) bool { got = append(got, tag(e)); return true }))
	want = scanWhole(t, l, q)
	// FindNewest answers the newest of what Find gives, through the index
	// where Find could use it (and, like Find, misses what a forged index
	// hides: Verify's finding, TestIndexOmissionIsVerifyFinding).
	e, err := l.FindNewest(ctx, q)
	require.NoError(t, err)
	if len(got) == 0 {
		require.Nil(t, e, "FindNewest %+v", q)
	} else {
		require.NotNil(t, e, "FindNewest %+v", q)
		require.Equal(t, got[len(got)-1], tag(e), "FindNewest %+v", q)
	}
	return got, want, indexed
}

// scanWhole is Find's answer from every line of the file, read from its
// first byte: what neither the index nor Lines' seek through it touches.
func scanWhole(t testing.TB, l *Ledger, q Query) (tags []string) {
	require.NoError(t, l.linesAt(ctx, 0, 0, func(seq int64, line []byte) bool {
		if seq < q.From || !q.match(line) {
			return true
		}
		if e, err := ParseLine(line); err == nil && q.selects(e) {
			tags = append(tags, tag(e))
		}
		return true
	}))
	return tags
}

// requireLinesRight fails unless Lines from random seqs (through the
// index's seek, whatever state it is in) gives the file's own lines.
func requireLinesRight(t testing.TB, r *rand.Rand, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	all := strings.SplitAfter(string(b), "\n")
	if all[len(all)-1] == "" || !strings.HasSuffix(all[len(all)-1], "\n") {
		all = all[:len(all)-1] // the empty string after the last newline, or a partial line
	}
	l, err := Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	n := int64(len(all))
	for range 30 {
		from, to := r.Int64N(n+3), int64(-1)
		if r.IntN(2) == 0 {
			to = from + r.Int64N(20)
		}
		var got []string
		require.NoError(t, l.Lines(ctx, from, to, func(seq int64, line []byte) bool {
			got = append(got, fmt.Sprintf("%d %s\n", seq, line))
			return true
		}))
		var want []string
		for i := from; i < n && (to < 0 || i < to); i++ {
			want = append(want, fmt.Sprintf("%d %s", i, all[i]))
		}
		require.Equal(t, want, got, "Lines(%d, %d)", from, to)
	}
}

// ledgerIDs returns the ids of the ledger's entries.
func ledgerIDs(t testing.TB, path string) []string {
	l, err := Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	var ids []string
	require.NoError(t, l.Find(ctx, Query{}, func(e *Entry) bool { ids = append(ids, e.ID); return true }))
	return ids
}

// tag names an entry by seq and hash, for comparing answers.
func tag(e *Entry) string { return fmt.Sprintf("%d:%s", e.Seq, e.EntryHash) }

func TestIndexFindEqualsScan(t *testing.T) {
	for seed := range uint64(12) {
		r := rand.New(rand.NewPCG(seed, 7))
		path := filepath.Join(t.TempDir(), "x.jsonl")
		randomLedger(t, r, path, 1+r.IntN(400))
		ids := ledgerIDs(t, path)
		for range 60 {
			q := randomQuery(r, ids)
			got, want, indexed := findBoth(t, path, q)
			require.True(t, indexed, "seed %d: the index was not used", seed)
			require.Equal(t, want, got, "seed %d query %+v", seed, q)
		}
		rep := verify(t, path, VerifyOptions{})
		require.True(t, rep.Valid, "%+v", rep.Issues)
	}
}

// The writer's index is, byte for byte, what a rebuild makes.
func TestIndexIsItsRebuild(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "x.jsonl")
	randomLedger(t, r, path, 3000) // grows through several bucket counts
	l, err := Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	require.Nil(t, l.compareIndex(ctx))
	x := l.openIndex()
	require.NotNil(t, x)
	defer x.close()
	require.EqualValues(t, 3000, x.h.entries)
}

func indexFile(path string) string { return IndexPath(path) }

// An index of a previous format (CPIDX2: no id or changed-path keys;
// CPIDX3: a key for every id) or of this format with a previous key set
// (no typed-subject keys) is not used, however well formed: Find by id or
// changed path through a CPIDX2, or by a subject and WO_* types through
// the older CPIDX4, would miss every entry, and a CPIDX3 lacks no key but
// is not this format. A reader scans; the next writer rebuilds it in this
// format, byte for byte what a rebuild makes.
func TestIndexOldFormatRebuilt(t *testing.T) {
	for _, old := range []struct{ name, magic, keyset string }{
		{"CPIDX2", "CPIDX2\n\x00", "cp-ledger-index/1\x00" + strings.Join(indexedMetadata, "\x00")},
		{"CPIDX3", "CPIDX3\n\x00", "cp-ledger-index/2\x00id\x00" + ChangedKey + "\x00" + strings.Join(indexedMetadata, "\x00")},
		{"CPIDX4-untyped", idxMagic, "cp-ledger-index/3\x00id-unless-seq\x00" + ChangedKey + "\x00" + strings.Join(indexedMetadata, "\x00")},
	} {
		t.Run(old.name, func(t *testing.T) { testOldFormatRebuilt(t, old.magic, old.keyset) })
	}
}

func testOldFormatRebuilt(t *testing.T, magic, keyset string) {
	r := rand.New(rand.NewPCG(9, 9))
	path := filepath.Join(t.TempDir(), "x.jsonl")
	randomLedger(t, r, path, 200)
	ids := ledgerIDs(t, path)
	// The old format's image: its magic and key set, the postings a v2
	// writer made (no id, changed or typed-subject keys), its header
	// checksum.
	oldKeyset := keyHash(keyset)
	l, err := Open(path, Options{})
	require.NoError(t, err)
	var ps []posting
	var off int64
	var n int64
	var head string
	var typed Query // a subject's WO_* entries
	require.NoError(t, l.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		e, err := ParseLine(line)
		require.NoError(t, err)
		for _, k := range keysOf(nil, seq, "", e.EventType, e.SubmissionID, func(k string) (string, bool) { v, ok := e.Metadata[k].(string); return v, ok }, nil) {
			if k == typedSubjectKey(e.EventType, e.SubmissionID) {
				continue
			}
			ps = append(ps, posting{key: k, seq: seq, off: off, len: uint32(len(line))})
		}
		if typed.Subject == "" && e.SubmissionID != "" && typedSubject(e.EventType) {
			typed = Query{Subject: e.SubmissionID, EventTypes: []string{"WO_CREATED", "WO_STARTED"}}
		}
		off += int64(len(line)) + 1
		n, head = seq+1, e.EntryHash
		return true
	}))
	l.Close()
	img, h, err := indexImage(ps, 0, n, off, head)
	require.NoError(t, err)
	h.keyset = oldKeyset
	hb := h.encode()
	copy(hb, magic)
	binary.LittleEndian.PutUint32(hb[124:], sum(hb[:124]))
	copy(img, hb)
	require.NoError(t, os.WriteFile(indexFile(path), img, 0o644))

	l, err = Open(path, Options{})
	require.NoError(t, err)
	require.Nil(t, l.openIndex(), "an old-format index is not used")
	require.Nil(t, l.compareIndex(ctx), "nor judged: it is never trusted")
	l.Close()
	require.NotEmpty(t, typed.Subject)
	for _, q := range []Query{{ID: ids[17]}, {Changed: "f/1"}, {ID: ids[len(ids)-1], From: 3}, typed} {
		got, want, indexed := findBoth(t, path, q)
		require.False(t, indexed)
		require.NotEmpty(t, want, "%+v", q)
		require.Equal(t, want, got, "%+v", q)
	}
	// The next append rebuilds it from the ledger.
	w, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	_, err = w.Append(ctx, []Draft{{EventType: "EV1", Metadata: map[string]any{ChangedKey: Changed{Added: []string{"f/1"}}.Metadata()}}})
	require.NoError(t, err)
	w.Close()
	b, err := os.ReadFile(indexFile(path))
	require.NoError(t, err)
	require.Equal(t, idxMagic, string(b[:8]))
	l, err = Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	require.Nil(t, l.compareIndex(ctx))
	for _, q := range []Query{{ID: ids[17]}, {Changed: "f/1"}, typed} {
		got, want, indexed := findBoth(t, path, q)
		require.True(t, indexed)
		require.Equal(t, want, got, "%+v", q)
	}
	// The typed-subject keys are there: the lookup reads the subject's
	// WO_* entries only.
	l.entryReads.Store(0)
	require.NoError(t, l.Find(ctx, typed, func(*Entry) bool { return true }))
	want := 0
	require.NoError(t, l.scan(ctx, typed, 0, func(*Entry) bool { want++; return true }))
	require.EqualValues(t, want, l.entryReads.Load())
}

// damage applies fn to the index of path and checks that Find still
// answers what a scan does, and that the next append repairs the index.
func damage(t *testing.T, name string, fn func(t *testing.T, path string)) {
	damageInside(t, name, false, fn)
}

// damageInside is damage for damage inside the postings, under a header
// that holds: a writer does not read them all, so it does not see it.
// Readers that meet it scan; Verify reports it (INDEX_MISMATCH), and with
// the index removed the next append rebuilds it.
func damageInside(t *testing.T, name string, inside bool, fn func(t *testing.T, path string)) {
	t.Run(name, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		path := filepath.Join(t.TempDir(), "x.jsonl")
		randomLedger(t, r, path, 300)
		ids := ledgerIDs(t, path)
		requireLinesRight(t, r, path)
		fn(t, path)
		requireLinesRight(t, r, path)
		for range 40 {
			q := randomQuery(r, ids)
			got, want, _ := findBoth(t, path, q)
			require.Equal(t, want, got, "query %+v", q)
		}
		if inside {
			rep := verify(t, path, VerifyOptions{})
			require.False(t, rep.Valid)
			require.Equal(t, IndexMismatch, rep.Issues[0].Code)
			require.NoError(t, os.Remove(indexFile(path)))
		}
		l, err := OpenWriter(path, Options{})
		require.NoError(t, err)
		_, err = l.Append(ctx, []Draft{{EventType: "EV1", SubmissionID: "S-1"}})
		require.NoError(t, err)
		l.Close()
		l, err = Open(path, Options{})
		require.NoError(t, err)
		defer l.Close()
		require.Nil(t, l.compareIndex(ctx))
		require.NotNil(t, l.openIndex(), "the next append rebuilt the index")
		got, want, _ := findBoth(t, path, Query{EventTypes: []string{"EV1"}})
		require.Equal(t, want, got)
	})
}

func readHeader(t *testing.T, path string) idxHeader {
	b, err := os.ReadFile(indexFile(path))
	require.NoError(t, err)
	h, err := decodeHeader(b)
	require.NoError(t, err)
	return h
}

func writeHeader(t *testing.T, path string, h idxHeader) {
	f, err := os.OpenFile(indexFile(path), os.O_WRONLY, 0)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteAt(h.encode(), 0)
	require.NoError(t, err)
}

// rewritePostings applies fn to every posting and writes it back with a
// valid checksum: an index forged by someone who knows the format.
func rewritePostings(t *testing.T, path string, fn func(i int, p *posting)) {
	h := readHeader(t, path)
	b, err := os.ReadFile(indexFile(path))
	require.NoError(t, err)
	for i := range int(h.postings) {
		off := postingAt(int(h.buckets), int64(i))
		p, err := decodePosting(b[off:])
		require.NoError(t, err)
		fn(i, &p)
		p.put(b[off:])
	}
	require.NoError(t, os.WriteFile(indexFile(path), b, 0o644))
}

func TestIndexDamaged(t *testing.T) {
	damage(t, "deleted", func(t *testing.T, path string) {
		require.NoError(t, os.Remove(indexFile(path)))
	})
	damage(t, "truncated", func(t *testing.T, path string) {
		st, err := os.Stat(indexFile(path))
		require.NoError(t, err)
		require.NoError(t, os.Truncate(indexFile(path), st.Size()/2))
	})
	damage(t, "header only", func(t *testing.T, path string) {
		require.NoError(t, os.Truncate(indexFile(path), idxHeaderSize))
	})
	damage(t, "garbage", func(t *testing.T, path string) {
		b := make([]byte, 9000)
		for i := range b {
			b[i] = byte(i * 7)
		}
		require.NoError(t, os.WriteFile(indexFile(path), b, 0o644))
	})
	damageInside(t, "flipped posting byte", true, func(t *testing.T, path string) {
		f, err := os.OpenFile(indexFile(path), os.O_RDWR, 0)
		require.NoError(t, err)
		defer f.Close()
		h := readHeader(t, path)
		_, err = f.WriteAt([]byte{0xff}, postingAt(int(h.buckets), 5)+17)
		require.NoError(t, err)
	})
	damageInside(t, "wrong offsets", true, func(t *testing.T, path string) {
		rewritePostings(t, path, func(i int, p *posting) { p.off += 37 })
	})
	damageInside(t, "offsets of other entries", true, func(t *testing.T, path string) {
		// Each posting names the line of the entry before: well-formed
		// lines, wrong seqs.
		var offs []int64
		rewritePostings(t, path, func(i int, p *posting) {
			offs = append(offs, p.off)
		})
		rewritePostings(t, path, func(i int, p *posting) {
			if i > 0 {
				p.off = offs[i-1]
			}
		})
	})
	damageInside(t, "one entry's postings name the next", true, func(t *testing.T, path string) {
		// The binary search by seq (Find by an id that names its seq)
		// lands on a posting of another line (seq 8), or on none (seq 7);
		// a lookup by key meets a posting whose line is not its seq, and
		// scans from the entry after the last one it checked, not from the
		// posting's seq.
		rewritePostings(t, path, func(i int, p *posting) {
			if p.seq == 7 {
				p.seq = 8
			}
		})
	})
	damage(t, "claims more entries than exist", func(t *testing.T, path string) {
		h := readHeader(t, path)
		h.entries += 50
		h.dataEnd += 5000
		writeHeader(t, path, h)
	})
	damage(t, "claims another history", func(t *testing.T, path string) {
		h := readHeader(t, path)
		h.leaf[0] ^= 1
		writeHeader(t, path, h)
	})
	damage(t, "left dirty by a stopped writer", func(t *testing.T, path string) {
		h := readHeader(t, path)
		h.dirty = 1
		writeHeader(t, path, h)
	})
	damage(t, "written before the last boot", func(t *testing.T, path string) {
		h := readHeader(t, path)
		h.boot[0] ^= 1
		writeHeader(t, path, h)
	})
	damage(t, "behind the ledger", func(t *testing.T, path string) {
		// A writer stopped after its entries were durable and before the
		// index named them: the index of an earlier moment.
		old, err := os.ReadFile(indexFile(path))
		require.NoError(t, err)
		randomLedger(t, rand.New(rand.NewPCG(9, 9)), path, 57)
		require.NoError(t, os.WriteFile(indexFile(path), old, 0o644))
	})
}

// A forged index that omits an entry hides it from Find by that key: what
// Verify (and so G6) reports as INDEX_MISMATCH.
func TestIndexOmissionIsVerifyFinding(t *testing.T) {
	path := newLedger(t, 50) // subjects S-0..S-49
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid)
	unlinkNewest(t, path, subjectKey("S-7"))
	got, want, indexed := findBoth(t, path, Query{Subject: "S-7"})
	require.True(t, indexed)
	require.Len(t, want, 1)
	require.Empty(t, got, "the omission hides the entry from a reader")
	rep = verify(t, path, VerifyOptions{})
	require.False(t, rep.Valid)
	require.Equal(t, IndexMismatch, rep.Issues[0].Code)
}

// unlinkNewest unlinks the newest posting of key from its bucket chain:
// an index forged to omit that entry.
func unlinkNewest(t *testing.T, path string, key uint64) {
	h := readHeader(t, path)
	b, err := os.ReadFile(indexFile(path))
	require.NoError(t, err)
	slot := bucketOf(key, int(h.buckets))
	head := binary.LittleEndian.Uint64(b[slotAt(slot):])
	prevOf := func(i uint64) posting {
		p, err := decodePosting(b[postingAt(int(h.buckets), int64(i-1)):])
		require.NoError(t, err)
		return p
	}
	if p := prevOf(head); p.key == key {
		binary.LittleEndian.PutUint64(b[slotAt(slot):], p.prev)
	} else {
		for i := head; i != 0; i = prevOf(i).prev {
			if q := prevOf(i); q.prev != 0 && prevOf(q.prev).key == key {
				q.prev = prevOf(q.prev).prev
				q.put(b[postingAt(int(h.buckets), int64(i-1)):])
				break
			}
		}
	}
	require.NoError(t, os.WriteFile(indexFile(path), b, 0o644))
}

// Appenders on several handles (as several processes) leave an index that
// is the rebuild of what they wrote.
func TestIndexConcurrentAppenders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			l, err := OpenWriter(path, Options{Actor: fmt.Sprint(w)})
			require.NoError(t, err)
			defer l.Close()
			for i := range 40 {
				var ds []Draft
				for j := range 1 + i%5 {
					ds = append(ds, Draft{EventType: fmt.Sprintf("EV%d", j), SubmissionID: fmt.Sprintf("W%d-%d", w, i), Metadata: map[string]any{"op_id": fmt.Sprintf("OP-%d", w)}})
				}
				_, err := l.Append(ctx, ds)
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	for _, q := range []Query{{EventTypes: []string{"EV0"}}, {OpID: "OP-2"}, {Subject: "W3-39"}, {EventTypes: []string{"EV4"}, From: 100}} {
		got, want, indexed := findBoth(t, path, q)
		require.True(t, indexed)
		require.Equal(t, want, got)
	}
}

// A writer stopped part way through writing the index (postings and bucket
// heads written, the header not yet) leaves it marked dirty: not used, and
// rebuilt by the next writer.
func TestIndexTornWrite(t *testing.T) {
	path := newLedger(t, 20)
	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Append(ctx, []Draft{{EventType: "EV", SubmissionID: "S-new"}})
	require.NoError(t, err)
	// Replay the steps of an index write by hand, stopping before the last.
	w := l.idx
	require.NotNil(t, w)
	h := w.h
	h.dirty = 1
	_, err = w.f.WriteAt(h.encode(), 0)
	require.NoError(t, err)
	junk := posting{key: subjectKey("S-3"), seq: 3, off: 0, len: 10}
	pb := make([]byte, idxPostingSize)
	junk.put(pb)
	_, err = w.f.WriteAt(pb, postingAt(int(h.buckets), int64(h.postings)))
	require.NoError(t, err)
	got, want, indexed := findBoth(t, path, Query{Subject: "S-3"})
	require.False(t, indexed)
	require.Equal(t, want, got)
	_, err = l.Append(ctx, []Draft{{EventType: "EV", SubmissionID: "S-3"}})
	require.NoError(t, err)
	got, want, indexed = findBoth(t, path, Query{Subject: "S-3"})
	require.True(t, indexed)
	require.Len(t, want, 2)
	require.Equal(t, want, got)
}

// A link or FIFO in the index's place is never opened: a writer refuses the
// ledger, a reader scans.
func TestIndexNotRegular(t *testing.T) {
	for _, kind := range []string{"symlink", "fifo"} {
		t.Run(kind, func(t *testing.T) {
			path := newLedger(t, 10)
			require.NoError(t, os.Remove(indexFile(path)))
			target := filepath.Join(t.TempDir(), "elsewhere")
			require.NoError(t, os.WriteFile(target, nil, 0o644))
			if kind == "symlink" {
				require.NoError(t, os.Symlink(target, indexFile(path)))
			} else {
				require.NoError(t, syscall.Mkfifo(indexFile(path), 0o644))
			}
			_, err := OpenWriter(path, Options{})
			requireCode(t, err, "NOT_REGULAR")
			err = within(t, func() error {
				got, want, indexed := findBoth(t, path, Query{Subject: "S-3"})
				require.False(t, indexed)
				require.Equal(t, want, got)
				return nil
			})
			require.NoError(t, err)
			b, _ := os.ReadFile(target)
			require.Empty(t, b)
		})
	}
}

// FuzzIndex gives Find an arbitrary index beside a real ledger: whatever
// it says, Find returns only entries of the ledger that its query selects,
// in seq order, each once, and nothing panics.
func FuzzIndex(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "x.jsonl")
	randomLedger(f, rand.New(rand.NewPCG(5, 5)), path, 60)
	good, err := os.ReadFile(IndexPath(path))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, uint8(0))
	f.Add(good[:idxHeaderSize], uint8(1))
	f.Add([]byte{}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, qi uint8) {
		_, _ = decodeHeader(b)
		_, _ = decodePosting(b)
		p := filepath.Join(t.TempDir(), "x.jsonl")
		data, _ := os.ReadFile(path)
		tl, _ := os.ReadFile(filepath.Join(dir, "x.tlog"))
		require.NoError(t, os.WriteFile(p, data, 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(p), "x.tlog"), tl, 0o644))
		require.NoError(t, os.WriteFile(IndexPath(p), b, 0o644))
		q := randomQuery(rand.New(rand.NewPCG(uint64(qi), 1)), nil)
		got, want, _ := findBoth(t, p, q)
		// Everything returned is in the scan's answer, in order, once.
		j := 0
		for _, g := range got {
			for j < len(want) && want[j] != g {
				j++
			}
			require.Less(t, j, len(want), "returned %s, not selected by %+v", g, q)
			j++
		}
	})
}

// writeEntries writes a ledger of es (seq, previous_hash and entry_hash
// filled in) with its stored hashes and no index: entries whose ids no
// writer of this package would make (imported, or older).
func writeEntries(t *testing.T, path string, es []Entry) {
	var lines, hashes []byte
	var frontier [64]tlog.Hash
	prev := ""
	for i := range es {
		e := &es[i]
		e.Seq, e.PreviousHash, e.Timestamp, e.Actor = int64(i), prev, "2026-12-06T10:00:00.000000Z", "tester"
		if e.PromptsUsed == nil {
			e.PromptsUsed = []string{}
		}
		var leaf tlog.Hash
		var err error
		lines, leaf, err = encode(lines, e)
		require.NoError(t, err)
		hashes = appendStoredHashes(hashes, &frontier, e.Seq, leaf)
		prev = e.EntryHash
	}
	require.NoError(t, os.WriteFile(path, lines, 0o644))
	hp, _, _ := SidePaths(path)
	require.NoError(t, os.WriteFile(hp, hashes, 0o644))
}

// Ids that do not name their entry's seq (another writer's, or from
// before ids named it) are keyed in the index; those that do are found at
// their seq. Either way Find by id answers what a scan does: duplicates,
// an id naming another entry's seq, one naming a seq past the end.
func TestIndexForeignIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	r := rand.New(rand.NewPCG(3, 4))
	var es []Entry
	for i := range 300 {
		var id string
		switch i % 6 {
		case 0, 1:
			id = newID(int64(i)) // names its seq
		case 2:
			id = fmt.Sprintf("LED-%016x", r.Uint64()|1<<63) // an old random id (starts a-f)
		case 3:
			id = newID(int64(i + 1)) // names the next entry's seq
		case 4:
			id = "LED-1a" + fmt.Sprintf("%014x", r.Uint64()>>8) // names seq 0xa... the shape, not its seq
		case 5:
			id = es[i-3].ID // a duplicate of an old random id
		}
		es = append(es, Entry{ID: id, EventType: fmt.Sprintf("EV%d", i%3), Metadata: map[string]any{}})
	}
	es[10].ID = es[0].ID                           // an id that names seq 0, carried by seq 10 too
	es[299].ID = "LED-9" + strings.Repeat("f", 15) // names a seq far past the end
	writeEntries(t, path, es)
	w, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	_, err = w.Append(ctx, []Draft{{EventType: "EV1"}, {EventType: "EV2"}}) // builds the index
	require.NoError(t, err)
	require.NoError(t, w.Close())
	ids := ledgerIDs(t, path)
	queries := []Query{{ID: "LED-0000000000000000"}, {ID: "LED-05" + strings.Repeat("0", 14)}, {ID: "LED-not-an-id"}}
	for _, id := range ids {
		queries = append(queries, Query{ID: id}, Query{ID: id, From: 150}, Query{ID: id, EventTypes: []string{"EV1"}})
	}
	for _, q := range queries {
		got, want, indexed := findBoth(t, path, q)
		require.True(t, indexed)
		require.Equal(t, want, got, "%+v", q)
	}
	got, _, _ := findBoth(t, path, Query{ID: es[0].ID})
	require.Len(t, got, 2, "the entry at the seq it names and the one that carries it elsewhere")
	l, err := Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	require.Nil(t, l.compareIndex(ctx))
	// The ids that name their seq have no key of their own.
	x := l.openIndex()
	require.NotNil(t, x)
	defer x.close()
	var ps []posting
	ps, err = x.lookup(idKey(es[1].ID), 0, ps)
	require.NoError(t, err)
	require.Empty(t, ps)
	ps, err = x.lookup(idKey(es[3].ID), 0, ps)
	require.NoError(t, err)
	require.Len(t, ps, 1)
}

// A ledger written by this package keys no id: its index holds the event
// type's posting (and the subject's) per entry, and Find by any id is a
// lookup at the seq it names.
func TestIndexNoIDPostings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	w, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	var ds []Draft
	for i := range 1000 {
		ds = append(ds, Draft{EventType: "TOOL_CALL", SubmissionID: fmt.Sprintf("S-%d", i)})
	}
	es, err := w.Append(ctx, ds)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	h := readHeader(t, path)
	require.EqualValues(t, 2000, h.postings)
	for _, i := range []int{0, 1, 15, 16, 255, 256, 999} {
		got, want, indexed := findBoth(t, path, Query{ID: es[i].ID})
		require.True(t, indexed)
		require.Equal(t, want, got)
		require.Len(t, got, 1)
	}
}

func TestEntryIDNamesSeq(t *testing.T) {
	for _, seq := range []int64{0, 1, 9, 15, 16, 255, 256, 4095, 1 << 20, 1<<40 - 1} {
		id := newID(seq)
		require.Regexp(t, `^LED-[0-9a-f]{16}$`, id)
		got, ok := IDSeq(id)
		require.True(t, ok, id)
		require.Equal(t, seq, got, id)
		require.NotEqual(t, id, newID(seq), "random digits")
	}
	require.Regexp(t, `^LED-[0-9a-f]{16}$`, newID(1<<40))
	for _, id := range []string{"", "LED-", "LED-0", "LED-00000000000000000", "led-0000000000000000", "LED-000000000000000G",
		"LED-A000000000000000", "LED-a000000000000000", "LED-1000000000000000", "LED-00000000000000A0", "XYZ-0000000000000000"} {
		_, ok := IDSeq(id)
		require.False(t, ok, id)
	}
	seq, ok := IDSeq("LED-1ff0000000000000")
	require.True(t, ok)
	require.EqualValues(t, 255, seq)
}

// FuzzIDSeq: IDSeq accepts exactly the ids newID makes for a seq below
// 2^40 (the form, whatever the random digits), and answers that seq.
func FuzzIDSeq(f *testing.F) {
	f.Add("LED-0000000000000000", int64(0))
	f.Add("LED-9ffffffffff00000", int64(1<<40-1))
	f.Add("LED-f123456789abcdef", int64(7))
	f.Fuzz(func(t *testing.T, id string, seq int64) {
		if s, ok := IDSeq(id); ok {
			require.Len(t, id, 20)
			k := int(id[4]-'0') + 1
			require.Equal(t, fmt.Sprintf("%x", s), id[5:5+k])
			require.Equal(t, strings.ToLower(id[4:]), id[4:])
		}
		if seq >= 0 {
			// Past 2^40 the id is random: it may have the form, never
			// naming that seq.
			got, ok := IDSeq(newID(seq))
			require.Equal(t, seq < 1<<40, ok && got == seq)
		}
	})
}

// atSeq finds a posting of every covered entry, whatever the spread of
// postings over entries (its window, then a binary search either side),
// and none past them.
func TestIndexAtSeq(t *testing.T) {
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 11))
		path := filepath.Join(t.TempDir(), "x.jsonl")
		n := 50 + r.IntN(1500)
		randomLedger(t, r, path, n)
		w, err := OpenWriter(path, Options{Actor: "tester"})
		require.NoError(t, err)
		// A crowd of postings at the end: the spread is uneven.
		md := map[string]any{ChangedKey: Changed{Added: []string{"a", "b", "c", "d", "e", "f", "g", "h"}}.Metadata()}
		for range 3 {
			_, err = w.Append(ctx, []Draft{{EventType: "EV1", SubmissionID: "S", Metadata: md}})
			require.NoError(t, err)
		}
		require.NoError(t, w.Close())
		l, err := Open(path, Options{})
		require.NoError(t, err)
		x := l.openIndex()
		require.NotNil(t, x)
		for seq := range int64(x.h.entries) {
			p, err := x.atSeq(seq)
			require.NoError(t, err, "seed %d seq %d", seed, seq)
			require.Equal(t, seq, p.seq)
		}
		_, err = x.atSeq(int64(x.h.entries))
		require.Error(t, err)
		x.f.Close()
		l.Close()
	}
}

// TestReaderKeepsIndexOpen: a reader's Finds share one open index file,
// each checked again against the ledger; when a writer puts a rebuilt
// index in its place, the next Find opens the new one by name (the old
// one, no longer linked, would never be brought up to date) and finds
// what was appended since.
func TestReaderKeepsIndexOpen(t *testing.T) {
	if !indexEnabled() {
		t.Skip("no boot id: no index")
	}
	path := filepath.Join(t.TempDir(), "l.jsonl")
	w, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	defer w.Close()
	_, err = w.Append(ctx, []Draft{{EventType: "A", SubmissionID: "S-1"}, {EventType: "B", SubmissionID: "S-2"}})
	require.NoError(t, err)
	r, err := Open(path, Options{})
	require.NoError(t, err)
	find := func(q Query) (got []string) {
		require.NoError(t, r.Find(ctx, q, func(e *Entry) bool { got = append(got, tag(e)); return true }))
		return got
	}
	require.Len(t, find(Query{EventTypes: []string{"A"}}), 1)
	first := r.rdIdx.f
	require.NotNil(t, first, "the reader keeps its index open")
	require.Len(t, find(Query{Subject: "S-2"}), 1)
	require.Same(t, first, r.rdIdx.f, "and uses it again")
	// Appended since: the kept index is checked again, and what it does
	// not cover yet is found past its end.
	_, err = w.Append(ctx, []Draft{{EventType: "A", SubmissionID: "S-3"}})
	require.NoError(t, err)
	require.Len(t, find(Query{EventTypes: []string{"A"}}), 2)
	// Rebuilt under a new inode by the writer.
	require.NoError(t, os.Remove(IndexPath(path)))
	_, err = w.Append(ctx, []Draft{{EventType: "A", SubmissionID: "S-4"}})
	require.NoError(t, err)
	got := find(Query{EventTypes: []string{"A"}})
	require.Len(t, got, 3)
	require.NotSame(t, first, r.rdIdx.f, "the unlinked index was given up")
	require.Len(t, r.rdIdx.retired, 1)
	x := r.openIndex()
	require.NotNil(t, x, "the new index is used")
	require.EqualValues(t, 4, x.h.entries)
	x.close()
	require.NoError(t, r.Close())
	require.Nil(t, r.rdIdx.f)
}

// Find by a subject and work-order lifecycle types (workorder.State's
// query) answers what a scan does, through the typed-subject keys: it
// reads the entries of those types only, not the thousands of other
// entries of the same subject (a work order's LLM_RESERVED and LLM_CALL).
func TestIndexTypedSubject(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.jsonl")
	w, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	defer w.Close()
	add := func(ds ...Draft) {
		t.Helper()
		_, err := w.Append(ctx, ds)
		require.NoError(t, err)
	}
	add(Draft{EventType: "WO_CREATED", SubmissionID: "WO-A"}, Draft{EventType: "WO_CREATED", SubmissionID: "WO-B"},
		Draft{EventType: "WO_CREATED"}, // no submission_id: no typed-subject posting
		Draft{EventType: "WO_APPROVED", SubmissionID: "WO-A"}, Draft{EventType: "WO_STARTED", SubmissionID: "WO-A"})
	const calls = 2500
	for i := 0; i < calls; i += 500 {
		var ds []Draft
		for range 500 {
			ds = append(ds, Draft{EventType: "LLM_RESERVED", SubmissionID: "WO-A"}, Draft{EventType: "LLM_CALL", SubmissionID: "WO-A"})
		}
		add(ds...)
	}
	add(Draft{EventType: "WO_STARTED", SubmissionID: "WO-A"}, Draft{EventType: "WO_COMPLETED", SubmissionID: "WO-A"},
		Draft{EventType: "WO_CANCELLED", SubmissionID: "WO-B"}, Draft{EventType: "EV", SubmissionID: "WO-A"},
		Draft{EventType: "WO_STARTED", SubmissionID: ""}, Draft{EventType: "WO_STARTED", SubmissionID: "WO-A\u2028\"x"})
	// Entries after those the index covers: it is put back as it was.
	covered, err := os.ReadFile(indexFile(path))
	require.NoError(t, err)
	add(Draft{EventType: "WO_EXPIRED", SubmissionID: "WO-A"}, Draft{EventType: "LLM_CALL", SubmissionID: "WO-A"},
		Draft{EventType: "WO_CREATED"}, Draft{EventType: "WO_STARTED", SubmissionID: "WO-B"})
	require.NoError(t, os.WriteFile(indexFile(path), covered, 0o644))
	coveredN := int64(readHeader(t, path).entries)

	ho2 := []string{"WO_CREATED", "WO_STARTED", "WO_COMPLETED", "WO_CANCELLED", "WO_EXPIRED"} // workorder.State's
	all := append([]string{"WO_APPROVED", "WO_REJECTED"}, ho2...)
	for _, tc := range []struct {
		name  string
		q     Query
		n     int  // entries selected
		other bool // the lookup reads entries it does not select
	}{
		{"state", Query{Subject: "WO-A", EventTypes: ho2}, 5, false},
		{"every lifecycle type", Query{Subject: "WO-B", EventTypes: all}, 3, false},
		{"one type", Query{Subject: "WO-A", EventTypes: []string{"WO_STARTED"}}, 2, false},
		{"one type twice", Query{Subject: "WO-A", EventTypes: []string{"WO_STARTED", "WO_STARTED"}}, 2, false},
		{"from", Query{Subject: "WO-A", EventTypes: ho2, From: 5}, 3, false},
		{"escaped subject", Query{Subject: "WO-A\u2028\"x", EventTypes: []string{"WO_STARTED"}}, 1, false},
		{"none of the type", Query{Subject: "WO-A", EventTypes: []string{"WO_REJECTED"}}, 0, false},
		{"another subject", Query{Subject: "WO-C", EventTypes: ho2}, 0, false},
		// The subject's key: every entry of WO-A.
		{"mixed with an unlisted type", Query{Subject: "WO-A", EventTypes: []string{"WO_CREATED", "LLM_CALL"}}, 1 + calls + 1, true},
		{"the subject alone", Query{Subject: "WO-B"}, 3, false},
		{"types without a subject", Query{EventTypes: []string{"WO_CREATED", "WO_STARTED"}}, 9, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want, indexed := findBoth(t, path, tc.q)
			require.True(t, indexed)
			require.Len(t, want, tc.n)
			require.Equal(t, want, got)
			// What the lookup read at the index's postings: the selected
			// entries it covers, or (the subject's key) more.
			l, err := Open(path, Options{})
			require.NoError(t, err)
			defer l.Close()
			require.NoError(t, l.Find(ctx, tc.q, func(*Entry) bool { return true }))
			inCover := 0
			for _, g := range want {
				var seq int64
				fmt.Sscanf(g, "%d:", &seq)
				if seq < coveredN {
					inCover++
				}
			}
			if tc.other {
				require.Greater(t, l.entryReads.Load(), int64(2*calls))
			} else {
				require.EqualValues(t, inCover, l.entryReads.Load(), "entries read through the index")
			}
		})
	}
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)

	// An index forged to omit a typed-subject posting hides that entry
	// from the lookup; Verify finds the edit.
	w.Close()
	require.NoError(t, os.Remove(indexFile(path)))
	w, err = OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	add(Draft{EventType: "EV"}) // rebuilds the index, covering everything
	rep = verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	unlinkNewest(t, path, typedSubjectKey("WO_EXPIRED", "WO-A"))
	got, want, indexed := findBoth(t, path, Query{Subject: "WO-A", EventTypes: []string{"WO_EXPIRED"}})
	require.True(t, indexed)
	require.Len(t, want, 1)
	require.Empty(t, got, "the omission hides WO_EXPIRED from a reader")
	rep = verify(t, path, VerifyOptions{})
	require.False(t, rep.Valid)
	require.Equal(t, IndexMismatch, rep.Issues[0].Code)
}

// Only the listed types pay a typed-subject posting: an LLM_CALL has
// its type's and its subject's, a WO_STARTED one more, an entry without
// a submission_id none; the writer's keys are the rebuild's.
func TestTypedSubjectPostings(t *testing.T) {
	for _, tc := range []struct {
		typ, sub string
		want     []uint64
	}{
		{"LLM_CALL", "WO-A", []uint64{eventKey("LLM_CALL"), subjectKey("WO-A")}},
		{"WO_STARTED", "WO-A", []uint64{eventKey("WO_STARTED"), subjectKey("WO-A"), typedSubjectKey("WO_STARTED", "WO-A")}},
		{"WO_STARTED", "", []uint64{eventKey("WO_STARTED")}},
		{"wo_started", "WO-A", []uint64{eventKey("wo_started"), subjectKey("WO-A")}},
	} {
		path := filepath.Join(t.TempDir(), "x.jsonl")
		w, err := OpenWriter(path, Options{Actor: "tester"})
		require.NoError(t, err)
		_, err = w.Append(ctx, []Draft{{EventType: tc.typ, SubmissionID: tc.sub}})
		require.NoError(t, err)
		w.Close()
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		line := b[:len(b)-1]
		require.Equal(t, tc.want, lineKeys(nil, 0, line), "%s %q", tc.typ, tc.sub)
		require.Equal(t, tc.want, slowLineKeys(nil, 0, line), "%s %q", tc.typ, tc.sub)
		require.EqualValues(t, len(tc.want), readHeader(t, path).postings)
		rep := verify(t, path, VerifyOptions{})
		require.True(t, rep.Valid, "%+v", rep.Issues)
	}
	require.NotEqual(t, typedSubjectKey("WO_STARTED", "WO-A"), typedSubjectKey("WO_STARTE", "DWO-A"))
}
