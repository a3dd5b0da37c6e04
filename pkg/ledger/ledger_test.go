package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var ctx = context.Background()

// newLedger appends n entries to a fresh ledger and returns its path.
func newLedger(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.jsonl")
	l, err := OpenWriter(path, Options{Actor: "tester"})
	require.NoError(t, err)
	defer l.Close()
	var drafts []Draft
	for i := range n {
		drafts = append(drafts, Draft{EventType: "EV", SubmissionID: fmt.Sprintf("S-%d", i), Decision: "ALLOW",
			Reason: "r", PromptsUsed: []string{"PRM-1"}, Metadata: map[string]any{"i": json.Number(fmt.Sprint(i)), "é": "ü\u2028"}})
	}
	if n > 0 {
		es, err := l.Append(ctx, drafts)
		require.NoError(t, err)
		require.Len(t, es, n)
	}
	return path
}

func verify(t *testing.T, path string, opts VerifyOptions) Report {
	t.Helper()
	rep, err := verifyPath(ctx, path, opts)
	require.NoError(t, err)
	return rep
}

// verifyPath verifies the ledger file at path, as cp-ledger --ledger does.
func verifyPath(ctx context.Context, path string, opts VerifyOptions) (Report, error) {
	s, err := OpenFileStore(path)
	if err != nil {
		return Report{}, err
	}
	defer s.Close()
	return Verify(ctx, s, opts)
}

func readLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.SplitAfter(string(b), "\n")
}

func writeLines(t *testing.T, path string, lines []string) {
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644))
}

func TestAppendVerifyRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 100, 1025} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path := newLedger(t, n)
			rep := verify(t, path, VerifyOptions{})
			require.True(t, rep.Valid, "issues: %v", rep.Issues)
			require.EqualValues(t, n, rep.Entries)

			l, err := Open(path, Options{})
			require.NoError(t, err)
			defer l.Close()
			st, err := l.State(ctx)
			require.NoError(t, err)
			require.EqualValues(t, n, st.Size)
			require.Equal(t, fmt.Sprintf("%x", st.Root[:]), rep.RootHash, "verify's recomputed root equals the stored tree's")
		})
	}
}

func TestEntryFormat(t *testing.T) {
	path := newLedger(t, 2)
	lines := readLines(t, path)
	e0, err := ParseLine([]byte(strings.TrimSuffix(lines[0], "\n")))
	require.NoError(t, err)
	e1, err := ParseLine([]byte(strings.TrimSuffix(lines[1], "\n")))
	require.NoError(t, err)
	require.Equal(t, "", e0.PreviousHash)
	require.Equal(t, e0.EntryHash, e1.PreviousHash)
	require.Regexp(t, `^LED-[0-9a-f]{16}$`, e0.ID)
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`, e0.Timestamp)
	require.Equal(t, "tester", e0.Actor)

	// entry_hash is SHA-256(0x00 ‖ canonical entry without entry_hash).
	var obj map[string]any
	d := json.NewDecoder(strings.NewReader(lines[0]))
	d.UseNumber()
	require.NoError(t, d.Decode(&obj))
	delete(obj, "entry_hash")
	body := canonicalForTest(t, obj)
	want := tlog.RecordHash(body)
	require.Equal(t, fmt.Sprintf("%x", want[:]), e0.EntryHash)
	// The line is itself canonical: keys sorted, no whitespace, raw UTF-8.
	require.Contains(t, lines[0], `"metadata":{"i":0,"é":"ü`+"\u2028"+`"}`)
}

// canonicalForTest re-encodes a decoded object with sorted keys and no
// whitespace or HTML escaping: for the simple values in these entries that is
// RFC 8785.
func canonicalForTest(t *testing.T, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	// encoding/json always escapes U+2028 and U+2029; RFC 8785 writes them raw.
	out := bytes.ReplaceAll(buf.Bytes(), []byte(`\u2028`), []byte("\u2028"))
	return bytes.TrimSuffix(out, []byte("\n"))
}

func TestVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, path string, lines []string) []string
		code    string
		seq     int64
		entries int64
	}{
		{"edited field", func(t *testing.T, _ string, ls []string) []string {
			ls[3] = strings.Replace(ls[3], `"decision":"ALLOW"`, `"decision":"DENY!"`, 1)
			return ls
		}, HashMismatch, 3, 10},
		{"non-canonical spacing", func(t *testing.T, _ string, ls []string) []string {
			ls[4] = strings.Replace(ls[4], `"decision":"ALLOW"`, `"decision": "ALLOW"`, 1)
			return ls
		}, Malformed, 4, 10},
		{"not json", func(t *testing.T, _ string, ls []string) []string {
			ls[2] = "garbage\n"
			return ls
		}, Malformed, 2, 10},
		{"deleted line", func(t *testing.T, _ string, ls []string) []string {
			return append(ls[:5:5], ls[6:]...)
		}, SeqGap, 5, 9},
		{"swapped lines", func(t *testing.T, _ string, ls []string) []string {
			ls[6], ls[7] = ls[7], ls[6]
			return ls
		}, SeqGap, 6, 10},
		{"edited previous_hash", func(t *testing.T, _ string, ls []string) []string {
			e, err := ParseLine([]byte(strings.TrimSuffix(ls[8], "\n")))
			require.NoError(t, err)
			e.PreviousHash = strings.Repeat("ab", 32)
			line, _, err := encode(nil, e) // a forger recomputes entry_hash
			require.NoError(t, err)
			ls[8] = string(line)
			return ls
		}, ChainBroken, 8, 10},
		{"unknown field", func(t *testing.T, _ string, ls []string) []string {
			ls[1] = strings.Replace(ls[1], `"timestamp"`, `"zzz":1,"timestamp"`, 1)
			ls[1] = strings.Replace(ls[1], `"seq":1,`, `"seq":1,`, 1)
			return ls
		}, Malformed, 1, 10},
		{"torn tail", func(t *testing.T, _ string, ls []string) []string {
			return append(ls, `{"actor":"x","decis`)
		}, TornTail, 10, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := newLedger(t, 10)
			lines := readLines(t, path)
			lines = lines[:len(lines)-1] // SplitAfter leaves a final ""
			writeLines(t, path, tc.tamper(t, path, lines))
			rep := verify(t, path, VerifyOptions{})
			require.False(t, rep.Valid)
			require.EqualValues(t, tc.entries, rep.Entries)
			require.NotEmpty(t, rep.Issues)
			require.Equal(t, tc.code, rep.Issues[0].Code, "issues: %+v", rep.Issues)
			require.Equal(t, tc.seq, rep.Issues[0].Seq, "issues: %+v", rep.Issues)
			require.Equal(t, tc.seq, *rep.FirstBadSeq)
		})
	}
}

// An unreadable line still names its entry when its shape does: the
// report says which entry broke, not only where.
func TestVerifyNamesBrokenEntries(t *testing.T) {
	for name, broken := range map[string]string{
		"bad escape":     `"reason":"r\q"`,
		"invalid UTF-8":  "\"reason\":\"r\xff\"",
		"lone surrogate": `"reason":"r\ud800"`,
	} {
		t.Run(name, func(t *testing.T) {
			path := newLedger(t, 3)
			lines := readLines(t, path)
			lines = lines[:len(lines)-1]
			e, err := ParseLine([]byte(strings.TrimSuffix(lines[1], "\n")))
			require.NoError(t, err)
			lines[1] = strings.Replace(lines[1], `"reason":"r"`, broken, 1)
			writeLines(t, path, lines)
			rep := verify(t, path, VerifyOptions{})
			require.NotEmpty(t, rep.Issues)
			require.Equal(t, Malformed, rep.Issues[0].Code, "issues: %+v", rep.Issues)
			require.Equal(t, e.ID, rep.Issues[0].ID)
		})
	}
}

func TestVerifyFindsTlogTampering(t *testing.T) {
	path := newLedger(t, 20)
	hp, _, _ := SidePaths(path)
	b, err := os.ReadFile(hp)
	require.NoError(t, err)
	// Flip a byte of the stored leaf hash of seq 13.
	idx := tlog.StoredHashIndex(0, 13)
	b[idx*tlog.HashSize] ^= 1
	require.NoError(t, os.WriteFile(hp, b, 0o644))
	rep := verify(t, path, VerifyOptions{})
	require.False(t, rep.Valid)
	require.Equal(t, MerkleMismatch, rep.Issues[0].Code)
	require.EqualValues(t, 13, rep.Issues[0].Seq)
}

// A forger who rewrites an entry and recomputes every later hash, the whole
// chain and X.tlog, is still caught by a checkpoint taken before.
func TestCheckpointCatchesRewrittenHistory(t *testing.T) {
	path := newLedger(t, 10)
	skey, vkey, err := note.GenerateKey(rand.Reader, "ops")
	require.NoError(t, err)
	signer, err := note.NewSigner(skey)
	require.NoError(t, err)
	verifier, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	l, err := Open(path, Options{})
	require.NoError(t, err)
	ck, text, err := l.Checkpoint(ctx, "test/log", signer)
	require.NoError(t, err)
	l.Close()
	require.EqualValues(t, 10, ck.Size)
	require.True(t, bytes.HasPrefix(text, []byte("test/log\n10\n")))

	vs := note.VerifierList(verifier)
	rep := verify(t, path, VerifyOptions{Verifiers: vs})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.True(t, rep.Checkpoint.Valid && rep.Checkpoint.Signed)

	// Without a verifier key the signed checkpoint cannot be checked: fail closed.
	rep = verify(t, path, VerifyOptions{})
	require.False(t, rep.Valid)
	require.Equal(t, CheckpointInvalid, rep.Issues[0].Code)

	// A wrong key does not verify either.
	_, otherV, _ := note.GenerateKey(rand.Reader, "ops")
	ov, _ := note.NewVerifier(otherV)
	rep = verify(t, path, VerifyOptions{Verifiers: note.VerifierList(ov)})
	require.False(t, rep.Valid)
	require.Equal(t, CheckpointInvalid, rep.Issues[0].Code)

	// Rewrite history consistently: new chain, new tlog.
	forged := filepath.Join(t.TempDir(), "forged.jsonl")
	fl, err := OpenWriter(forged, Options{Actor: "mallory"})
	require.NoError(t, err)
	_, err = fl.Append(ctx, []Draft{{EventType: "EV"}, {EventType: "FORGED"}})
	require.NoError(t, err)
	fl.Close()
	fhp, _, _ := SidePaths(forged)
	hp, cp, _ := SidePaths(path)
	for _, p := range [][2]string{{forged, path}, {fhp, hp}} {
		b, err := os.ReadFile(p[0])
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p[1], b, 0o644))
	}
	rep = verify(t, path, VerifyOptions{Verifiers: vs})
	require.False(t, rep.Valid)
	require.Equal(t, CheckpointInconsistent, rep.Issues[0].Code, "%+v", rep.Issues)

	// Held checkpoints are checked too.
	os.Remove(cp)
	rep = verify(t, path, VerifyOptions{Verifiers: vs, Held: [][]byte{text}})
	require.False(t, rep.Valid)
	require.Equal(t, CheckpointInconsistent, rep.Issues[0].Code)
}

func TestTornTailRepairedOnAppend(t *testing.T) {
	path := newLedger(t, 5)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"actor":"half-writ`)
	require.NoError(t, err)
	f.Close()
	require.Equal(t, TornTail, verify(t, path, VerifyOptions{}).Issues[0].Code)

	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	es, err := l.Append(ctx, []Draft{{EventType: "AFTER"}})
	require.NoError(t, err)
	require.EqualValues(t, 5, es[0].Seq)
	r := l.LastRepair()
	require.EqualValues(t, len(`{"actor":"half-writ`), r.TornBytes)
	l.Close()
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, 6, rep.Entries)
}

// A crash after the lines were written but before the stored hashes were:
// verify says so, and the next append recomputes them from the lines.
func TestStoredHashesRebuilt(t *testing.T) {
	path := newLedger(t, 9)
	hp, _, _ := SidePaths(path)
	keep := tlog.StoredHashCount(6) * tlog.HashSize
	require.NoError(t, os.Truncate(hp, keep+7)) // and a partial record
	rep := verify(t, path, VerifyOptions{})
	require.False(t, rep.Valid)
	require.Equal(t, TornTail, rep.Issues[0].Code)

	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	_, err = l.Append(ctx, []Draft{{EventType: "AFTER"}})
	require.NoError(t, err)
	require.EqualValues(t, 3, l.LastRepair().RebuiltHashes)
	l.Close()
	rep = verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)

	// Stored hashes beyond the last line (lines lost, hashes kept) are dropped.
	lines := readLines(t, path)
	writeLines(t, path, lines[:8])
	l, err = OpenWriter(path, Options{})
	require.NoError(t, err)
	es, err := l.Append(ctx, []Draft{{EventType: "AGAIN"}})
	require.NoError(t, err)
	require.EqualValues(t, 8, es[0].Seq)
	require.EqualValues(t, 2, l.LastRepair().DroppedHashes)
	l.Close()
	require.True(t, verify(t, path, VerifyOptions{}).Valid)
}

func TestAppendRefusesCorruptTail(t *testing.T) {
	path := newLedger(t, 3)
	lines := readLines(t, path)
	lines[2] = strings.Replace(lines[2], `"reason":"r"`, `"reason":"x"`, 1)
	writeLines(t, path, lines)
	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Append(ctx, []Draft{{EventType: "X"}})
	require.Error(t, err)
	require.Equal(t, "LEDGER_INVALID", err.(*Error).Code())
}

func TestAppendStopsAtBadDraft(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.jsonl")
	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	es, err := l.Append(ctx, []Draft{{EventType: "OK"}, {EventType: "BAD", Metadata: map[string]any{"n": json.Number("123456789012345678901")}}, {EventType: "NEVER"}})
	require.Error(t, err)
	require.Len(t, es, 1, "the drafts before the bad one are appended")
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid)
	require.EqualValues(t, 1, rep.Entries)
}

func TestGenesis(t *testing.T) {
	dir := t.TempDir()
	parent := filepath.Join(dir, "parent.jsonl")
	pl, err := OpenWriter(parent, Options{})
	require.NoError(t, err)
	_, err = pl.Append(ctx, []Draft{{EventType: "A"}, {EventType: "B"}})
	require.NoError(t, err)
	st, err := pl.State(ctx)
	require.NoError(t, err)
	pl.Close()

	child := filepath.Join(dir, "child.jsonl")
	cl, err := OpenWriter(child, Options{})
	require.NoError(t, err)
	defer cl.Close()
	e, err := Genesis(ctx, cl, Draft{Metadata: map[string]any{"parent_hash": st.Head}})
	require.NoError(t, err)
	require.Equal(t, "GENESIS", e.EventType)
	require.EqualValues(t, 0, e.Seq)
	_, err = Genesis(ctx, cl, Draft{})
	require.Error(t, err)
	require.Equal(t, "LEDGER_NOT_EMPTY", err.(*Error).Code())
}

func TestProofs(t *testing.T) {
	path := newLedger(t, 37)
	l, err := Open(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	for _, tc := range []struct{ seq, size int64 }{{0, 0}, {36, 0}, {5, 6}, {5, 37}, {0, 1}, {17, 20}} {
		p, err := ProveInclusion(ctx, l, tc.seq, tc.size, "o")
		require.NoError(t, err)
		require.NoError(t, VerifyInclusion(p, nil), "seq %d size %d", tc.seq, tc.size)
		bad := p
		bad.Seq = (p.Seq + 1) % p.TreeSize
		if bad.Seq != p.Seq {
			require.Error(t, VerifyInclusion(bad, nil))
		}
		bad = p
		bad.Checkpoint = strings.Replace(p.Checkpoint, "\n"+fmt.Sprint(p.TreeSize)+"\n", "\n"+fmt.Sprint(p.TreeSize+1)+"\n", 1)
		require.Error(t, VerifyInclusion(bad, nil))
	}
	for _, tc := range []struct{ from, to int64 }{{1, 37}, {36, 37}, {37, 37}, {8, 16}, {7, 0}} {
		p, err := ProveConsistency(ctx, l, tc.from, tc.to)
		require.NoError(t, err)
		require.NoError(t, VerifyConsistency(p))
		if p.From != p.To {
			p.FromRoot = p.ToRoot
			require.Error(t, VerifyConsistency(p))
		}
	}
	_, err = ProveInclusion(ctx, l, 37, 0, "o")
	require.Error(t, err)
	_, err = ProveConsistency(ctx, l, 0, 5)
	require.Error(t, err)
	_, err = ProveConsistency(ctx, l, 5, 38)
	require.Error(t, err)
}

// The stored checkpoint is used for proofs when it covers the entry, and a
// signed one verifies offline with the verifier key only.
func TestProveAgainstSignedCheckpoint(t *testing.T) {
	path := newLedger(t, 12)
	skey, vkey, _ := note.GenerateKey(rand.Reader, "ops")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	defer l.Close()
	_, _, err = l.Checkpoint(ctx, "o", s)
	require.NoError(t, err)
	_, err = l.Append(ctx, []Draft{{EventType: "LATER"}})
	require.NoError(t, err)

	p, err := ProveInclusion(ctx, l, 3, 0, "o")
	require.NoError(t, err)
	require.EqualValues(t, 12, p.TreeSize, "proves against the stored checkpoint")
	require.NoError(t, VerifyInclusion(p, note.VerifierList(v)))
	require.Error(t, VerifyInclusion(p, nil), "signed checkpoint without a key")

	p, err = ProveInclusion(ctx, l, 12, 0, "o")
	require.NoError(t, err)
	require.EqualValues(t, 13, p.TreeSize, "the checkpoint does not cover seq 12: the current tree")
}

func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.jsonl")
	const writers, batches, per = 4, 20, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			l, err := OpenWriter(path, Options{Actor: fmt.Sprint(w)})
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Close()
			for range batches {
				ds := make([]Draft, per)
				for i := range ds {
					ds[i] = Draft{EventType: "W"}
				}
				if _, err := l.Append(ctx, ds); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, writers*batches*per, rep.Entries)
}

func TestParseCheckpoint(t *testing.T) {
	good := "o\n3\n" + strings.Repeat("A", 43) + "=\n"
	_, err := ParseCheckpoint(good)
	require.NoError(t, err)
	for _, bad := range []string{"", "o\n3\n", "o\n03\n" + strings.Repeat("A", 43) + "=\n", " o\n3\n" + strings.Repeat("A", 43) + "=\n",
		"o\n-1\n" + strings.Repeat("A", 43) + "=\n", "o\n3\nAAAA\n", "o\n3\n" + strings.Repeat("A", 43) + "=", "o\n3\n" + strings.Repeat("A", 43) + "=\n\n"} {
		_, err := ParseCheckpoint(bad)
		require.Error(t, err, "%q", bad)
	}
	c, err := ParseCheckpoint(good + "ext one\n")
	require.NoError(t, err)
	require.Equal(t, []string{"ext one"}, c.Extensions)
	require.Equal(t, good+"ext one\n", c.Text())
}

func FuzzParseLine(f *testing.F) {
	path := newLedgerF(f)
	b, _ := os.ReadFile(path)
	for _, l := range bytes.Split(b, []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`{"seq":1}`))
	// Escapes in strings, prompts, nested metadata: what entryOf decodes.
	escaped := &Entry{Seq: 3, ID: "LED-00000000000000a1", Timestamp: "2026-12-06T00:00:00.000000Z", EventType: "NOTE",
		SubmissionID: "s\u00e9", Decision: "OK", Reason: "a \"quote\", a \\ and a line\nbreak \u2028 \u001f é",
		PromptsUsed: []string{"PRM-A", "PRM-\"B"}, Metadata: map[string]any{"n": json.Number("1.5"), "o": map[string]any{"k": []any{"x", nil, true}}},
		Actor: "ops", PreviousHash: strings.Repeat("ab", 32)}
	line, _, err := encode(nil, escaped)
	require.NoError(f, err)
	line = bytes.TrimSuffix(line, []byte("\n"))
	vals, ok := scanEntry(line)
	require.True(f, ok, "the escaped seed is canonical")
	fe, err := entryOf(line, vals)
	require.NoError(f, err)
	e, err := ParseLine(line)
	require.NoError(f, err)
	require.Equal(f, e, fe)
	require.Equal(f, escaped.Reason, fe.Reason)
	f.Add(line)
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		leaf, info, issue := checkLine(line, 0)
		vals, ok := scanEntry(line)
		// A tail's reading of the line (its seq and entry_hash) and a
		// writer's leaf check give ParseLine's answers, fast path or not.
		seq, head, terr := lastEntryOf(line)
		if (terr == nil) != (err == nil) || err == nil && (seq != e.Seq || head != e.EntryHash) {
			t.Fatalf("lastEntryOf(%q) = %d, %q, %v; ParseLine: %+v, %v", line, seq, head, terr, e, err)
		}
		for _, at := range []int64{0, 1, seq} {
			fast, ferr := checkedLeaf(line, at)
			slow, serr := parsedLeaf(line, at)
			if (ferr == nil) != (serr == nil) || fast != slow {
				t.Fatalf("checkedLeaf(%q, %d) = %x, %v; parsed: %x, %v", line, at, fast, ferr, slow, serr)
			}
		}
		if ok && jcs.Check(line) != nil {
			t.Fatalf("scanEntry accepted a line that is not canonical JSON: %q", line)
		}
		if ok {
			// Find's reading of a canonical line gives ParseLine's entry.
			fe, ferr := entryOf(line, vals)
			if ferr != nil || err != nil || !reflect.DeepEqual(fe, e) {
				t.Fatalf("entryOf(%q) = %+v, %v; ParseLine: %+v, %v", line, fe, ferr, e, err)
			}
		}
		if shape, shaped := scan(line, false); ok && (!shaped || shape != vals) {
			t.Fatalf("the shape-only scan disagrees on a canonical entry: %q", line)
		}
		if err != nil {
			if issue == nil {
				t.Fatalf("unparsable line passed checkLine: %q", line)
			}
			return
		}
		// A parsed entry re-encodes; when the line is exactly that encoding
		// the fast path must agree with it.
		stored := e.EntryHash
		out, l2, err := encode(nil, e)
		if err != nil {
			return
		}
		if bytes.Equal(append(bytes.Clone(line), '\n'), out) {
			if issue != nil || !info.ok || l2 != leaf || e.EntryHash != stored {
				t.Fatalf("canonical line %q: issue %v", line, issue)
			}
		}
		_, _ = scanEntry(line)
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add("o\n3\n" + strings.Repeat("A", 43) + "=\n")
	f.Add("origin\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		if c.Text() != text {
			t.Fatalf("round trip: %q → %q", text, c.Text())
		}
		_, _, _ = OpenCheckpoint([]byte(text), nil)
	})
}

func newLedgerF(f *testing.F) string {
	path := filepath.Join(f.TempDir(), "seed.jsonl")
	l, err := OpenWriter(path, Options{Actor: "seed"})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, []Draft{{EventType: "A", Metadata: map[string]any{"k": []any{json.Number("1.5"), "x", nil, true}}}, {EventType: "B"}}); err != nil {
		f.Fatal(err)
	}
	return path
}

// The append path's frontier computes exactly the stored hashes of
// tlog.StoredHashesForRecordHash.
func TestStoredHashesMatchTlog(t *testing.T) {
	var stored memHashes
	var frontier [64]tlog.Hash
	var got []byte
	for n := int64(0); n < 3000; n++ {
		leaf := tlog.RecordHash([]byte(fmt.Sprint(n)))
		want, err := tlog.StoredHashesForRecordHash(n, leaf, stored)
		require.NoError(t, err)
		stored = append(stored, want...)
		got = appendStoredHashes(got, &frontier, n, leaf)
	}
	var all []byte
	for _, h := range stored {
		all = append(all, h[:]...)
	}
	require.Equal(t, all, got)
}

func TestStampMatchesTimeFormat(t *testing.T) {
	for _, ts := range []time.Time{time.Unix(0, 0), time.Date(2026, 11, 24, 23, 59, 59, 999999999, time.UTC),
		time.Date(9999, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600)), time.Now()} {
		require.Equal(t, ts.UTC().Format(TimeFormat), stamp(ts))
	}
}

// A whole last entry that lost only its newline is restored, not dropped:
// the stored hashes vouch for it.
func TestMissingNewlineRestored(t *testing.T) {
	path := newLedger(t, 4)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)-1], 0o644))
	l, err := OpenWriter(path, Options{})
	require.NoError(t, err)
	es, err := l.Append(ctx, []Draft{{EventType: "AFTER"}})
	require.NoError(t, err)
	require.EqualValues(t, 4, es[0].Seq, "entry 3 kept")
	require.True(t, l.LastRepair().CompletedLine)
	l.Close()
	rep := verify(t, path, VerifyOptions{})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.EqualValues(t, 5, rep.Entries)
}
