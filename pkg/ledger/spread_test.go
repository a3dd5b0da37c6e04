package ledger

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"
)

// spreadDrafts are n drafts of varied sizes: metadata from none to ~1 KB,
// with and without prompts, strings that need escaping.
func spreadDrafts(n int) []Draft {
	ds := make([]Draft, n)
	for i := range ds {
		d := Draft{EventType: "E", SubmissionID: fmt.Sprint("S-", i%7), Decision: "OK", Reason: "r\"\n\u2028<" + strings.Repeat("x", i%5)}
		if i%3 != 0 {
			d.Metadata = map[string]any{"i": i, "pad": strings.Repeat("é", i%400), "nested": map[string]any{"b": []any{true, nil, 1.5}}}
		}
		if i%4 == 1 {
			d.PromptsUsed = []string{"PRM-A", "PRM-B"}
		}
		ds[i] = d
	}
	return ds
}

// TestBuildSpreadSameBytes holds the batch encoded on several goroutines
// to the entries encoded one by one: the same lines byte for byte (the
// spread entries re-encoded in order, with their ids), the same chain, the
// same stored hashes, the same line ends.
func TestBuildSpreadSameBytes(t *testing.T) {
	clock := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { clock = clock.Add(time.Microsecond); return clock }
	heads := []string{"", "a3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", "parent:not-hex \"quoted\""}
	for _, n := range []int{1, 2, spreadFrom, 257, 1000} {
		for _, workers := range []int{2, 3, 5, 8} {
			for hi, head := range heads {
				for _, authOff := range []bool{false, true} {
					t.Run(fmt.Sprintf("n%d/w%d/head%d/auth%v", n, workers, hi, authOff), func(t *testing.T) {
						opts := Options{Actor: "tester", Now: now, AuthOff: authOff}
						drafts := spreadDrafts(n)
						var frontier [64]tlog.Hash
						frontier[0][0] = 7 // a tree of odd size: the first leaf completes a node
						seq0 := int64(41)
						entries := make([]Entry, n)
						for i, d := range drafts {
							entries[i] = Entry{Seq: seq0 + int64(i), Timestamp: stamp(now()), EventType: d.EventType, SubmissionID: d.SubmissionID,
								Decision: d.Decision, Reason: d.Reason, PromptsUsed: d.PromptsUsed, Metadata: d.Metadata, Actor: opts.Actor}
						}
						f := frontier
						buf, hbuf, got, ends, err := buildSpread([]byte("before\n"), nil, &f, head, 100, entries, nil, opts, workers)
						require.NoError(t, err)
						require.Len(t, got, n)
						require.Len(t, ends, n)

						// The same entries, ids and clock included, encoded in order.
						want := []byte("before\n")
						var wantH []byte
						wf := frontier
						prev := head
						var wantEnds []int64
						for i := range got {
							e := got[i]
							require.Equal(t, seq0+int64(i), e.Seq)
							require.Equal(t, prev, e.PreviousHash, "entry %d chains to the one before", i)
							if authOff {
								require.Equal(t, "off", e.Metadata["_auth"])
								require.NotContains(t, drafts[i].Metadata, "_auth", "the caller's map is never changed")
							}
							require.NotNil(t, e.PromptsUsed)
							hash := e.EntryHash
							var leaf tlog.Hash
							want, leaf, err = encode(want, &e)
							require.NoError(t, err)
							require.Equal(t, hash, e.EntryHash, "entry %d", i)
							wantH = appendStoredHashes(wantH, &wf, e.Seq, leaf)
							wantEnds = append(wantEnds, 100+int64(len(want)))
							prev = e.EntryHash
						}
						require.Equal(t, string(want), string(buf))
						require.Equal(t, wantH, hbuf)
						require.Equal(t, wf, f)
						require.Equal(t, wantEnds, ends)
						for i, line := range bytes.Split(bytes.TrimSuffix(buf[len("before\n"):], []byte("\n")), []byte("\n")) {
							_, err := checkedLeaf(line, seq0+int64(i))
							require.NoError(t, err, "line %d", i)
						}
					})
				}
			}
		}
	}
}

// TestBuildSpreadStopsAtBadDraft: a draft that cannot be encoded ends the
// batch before it, wherever it falls among the goroutines' runs: the
// entries before it come back with their lines and hashes, none after.
func TestBuildSpreadStopsAtBadDraft(t *testing.T) {
	const n = 300
	for _, bad := range []int{0, 1, 74, 75, 76, 149, 150, 299} {
		for _, workers := range []int{2, 4} {
			t.Run(fmt.Sprintf("bad%d/w%d", bad, workers), func(t *testing.T) {
				drafts := spreadDrafts(n)
				drafts[bad].Metadata = map[string]any{"nan": math.NaN()}
				if bad+7 < n {
					drafts[bad+7].Metadata = map[string]any{"n": json.Number("123456789012345678901")} // a second bad one, later
				}
				entries := make([]Entry, n)
				for i, d := range drafts {
					entries[i] = Entry{Seq: int64(i), Timestamp: "2026-12-06T12:00:00.000000Z", EventType: d.EventType, Metadata: d.Metadata}
				}
				var f [64]tlog.Hash
				buf, hbuf, got, ends, err := buildSpread(nil, nil, &f, "", 0, entries, nil, Options{}, workers)
				require.Error(t, err)
				require.Contains(t, err.Error(), "metadata")
				require.Len(t, got, bad)
				require.Len(t, ends, bad)
				require.Equal(t, bad, bytes.Count(buf, []byte("\n")))
				if bad > 0 {
					require.EqualValues(t, len(buf), ends[bad-1])
				}
				require.Equal(t, treeHashes(t, got), hbuf)
			})
		}
	}
}

// treeHashes are the stored hashes of a tree of entries from seq 0.
func treeHashes(t *testing.T, es []Entry) []byte {
	var f [64]tlog.Hash
	var out []byte
	for _, e := range es {
		b, err := hex.DecodeString(e.EntryHash)
		require.NoError(t, err)
		leaf := tlog.Hash(b)
		out = appendStoredHashes(out, &f, e.Seq, leaf)
	}
	return out
}

// TestAppendLargeBatches appends batches large enough to be encoded on
// every core, after and before single appends, with and without the auth
// stamp, and verifies the ledger and every stored hash.
func TestAppendLargeBatches(t *testing.T) {
	for _, authOff := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "l.jsonl")
		l, err := OpenWriter(path, Options{Actor: "tester", AuthOff: authOff})
		require.NoError(t, err)
		total := 0
		for _, n := range []int{500, 1, spreadFrom, 3, 1000, 700} {
			ds := spreadDrafts(n)
			if n != 700 { // a large first entry: the batch is spread (700: its first is small, it is not)
				ds[0].Metadata = map[string]any{"pad": strings.Repeat("x", spreadLine)}
			}
			es, err := l.Append(ctx, ds)
			require.NoError(t, err)
			require.Len(t, es, n)
			require.EqualValues(t, total, es[0].Seq)
			total += n
		}
		require.NoError(t, l.Close())
		rep := verify(t, path, VerifyOptions{})
		require.True(t, rep.Valid, "%+v", rep.Issues)
		require.EqualValues(t, total, rep.Entries)
	}
}

// TestStampAuthOff: every entry written with auth off says so, whatever
// the draft's metadata says; the caller's map is never changed, and one
// that already says "off" is taken as it is (no copy).
func TestStampAuthOff(t *testing.T) {
	require.Equal(t, map[string]any{"_auth": "off"}, stampAuthOff(nil))
	on := map[string]any{"_auth": "on", "a": 1}
	require.Equal(t, map[string]any{"_auth": "off", "a": 1}, stampAuthOff(on))
	require.Equal(t, "on", on["_auth"], "the caller's map is never changed")
	odd := map[string]any{"_auth": []any{"off"}}
	require.Equal(t, "off", stampAuthOff(odd)["_auth"])
	plain := map[string]any{"a": 1}
	require.Equal(t, map[string]any{"_auth": "off", "a": 1}, stampAuthOff(plain))
	require.NotContains(t, plain, "_auth")
	off := map[string]any{"_auth": "off", "a": 1}
	got := stampAuthOff(off)
	got["b"] = 2
	require.Equal(t, 2, off["b"], "a map that already says off is the entry's own")
}

// FuzzBuildSpread holds the batch encoded on several goroutines to the
// one-by-one encoding for arbitrary strings (reason, a metadata value, the
// head it chains to), batch sizes and goroutine counts: the same bytes, or
// the same refusal at the same draft.
func FuzzBuildSpread(f *testing.F) {
	f.Add("within scope", "bash", "", uint16(100), uint8(2), uint16(7))
	f.Add("r\"\n\u2028<", "\xff", "parent", uint16(300), uint8(3), uint16(299))
	f.Add("", "é", "a3f1c2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", uint16(1), uint8(8), uint16(0))
	f.Fuzz(func(t *testing.T, reason, val, head string, n uint16, workers uint8, odd uint16) {
		size := int(n%400) + 1
		w := int(workers%8) + 2
		mk := func() []Entry {
			es := make([]Entry, size)
			for i := range es {
				es[i] = Entry{Seq: int64(i) + 3, Timestamp: "2026-12-06T12:00:00.000000Z", EventType: "E", Reason: reason, Actor: "a"}
				if i == int(odd)%size {
					es[i].Metadata = map[string]any{"v": val, "r": reason}
					es[i].SubmissionID = val
				}
			}
			return es
		}
		var f1, f2 [64]tlog.Hash
		buf, hbuf, got, ends, err := buildSpread(nil, nil, &f1, head, 0, mk(), nil, Options{}, w)
		var want, wantH []byte
		var wantEnds []int64
		prev := head
		var werr error
		for i, e := range mk() {
			if i < len(got) {
				e.ID = got[i].ID // random: taken from the spread run
			} else {
				e.ID = newID(e.Seq)
			}
			e.PromptsUsed = []string{}
			e.PreviousHash = prev
			var leaf tlog.Hash
			if want, leaf, werr = encode(want, &e); werr != nil {
				break
			}
			wantH = appendStoredHashes(wantH, &f2, e.Seq, leaf)
			wantEnds = append(wantEnds, int64(len(want)))
			prev = e.EntryHash
		}
		require.Equal(t, werr == nil, err == nil, "spread: %v, one by one: %v", err, werr)
		require.Equal(t, string(want), string(buf))
		require.Equal(t, wantH, hbuf)
		require.Equal(t, wantEnds, ends)
		require.Equal(t, len(wantEnds), len(got))
	})
}

// TestBuildSpreadsAfterFirst: build encodes a batch whose first line is
// long in order for that line, then on every core chained to it; the bytes,
// ends and stored hashes are the one-by-one encoding's, and a bad draft
// anywhere ends the batch before it.
func TestBuildSpreadsAfterFirst(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, bad := range []int{-1, 1, 2, 150, 299} {
		t.Run(fmt.Sprint("bad", bad), func(t *testing.T) {
			ds := spreadDrafts(300)
			ds[0].Metadata = map[string]any{"pad": strings.Repeat("x", spreadLine)}
			if bad >= 0 {
				ds[bad].Metadata = map[string]any{"nan": math.NaN()}
			}
			var f [64]tlog.Hash
			head := "parent"
			buf, hbuf, got, ends, err := build([]byte("x\n"), nil, &f, 5, head, 10, ds, Options{Actor: "a"})
			want := len(ds)
			if bad >= 0 {
				require.Error(t, err)
				want = bad
			} else {
				require.NoError(t, err)
			}
			require.Len(t, got, want)
			var wbuf, wh []byte
			var wf [64]tlog.Hash
			var wends []int64
			prev := head
			for i := range got {
				e := got[i]
				require.Equal(t, prev, e.PreviousHash)
				var leaf tlog.Hash
				wbuf, leaf, err = encode(wbuf, &e)
				require.NoError(t, err)
				wh = appendStoredHashes(wh, &wf, e.Seq, leaf)
				wends = append(wends, 10+2+int64(len(wbuf)))
				prev = e.EntryHash
			}
			require.Equal(t, "x\n"+string(wbuf), string(buf))
			require.Equal(t, wh, hbuf)
			require.Equal(t, wends, ends)
		})
	}
}
