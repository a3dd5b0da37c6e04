package ledgerimport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/legacy"
	"github.com/stretchr/testify/require"
)

// ledgers holds CPv2 ledgers made by Python's own json.dumps
// (gen_ledgers.py there), BROKEN.json naming each broken line.
const ledgers = "../../../testdata/cpv2/ledgers"

func importInto(t *testing.T, data []byte) (*LedgerImport, []*ledger.Entry, ledger.Store) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.OpenWriter(filepath.Join(t.TempDir(), "imported.jsonl"), ledger.Options{Actor: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	im, err := ImportLedger(ctx, bytes.NewReader(data), "x.jsonl", "test/x", l)
	require.NoError(t, err)
	rep, err := ledger.Verify(ctx, l, ledger.VerifyOptions{})
	require.NoError(t, err)
	require.True(t, rep.Valid, "the imported ledger is ours and verifies: %v", rep.Issues)
	require.Equal(t, im.Entries, rep.Entries)
	require.Equal(t, im.RootHash, rep.RootHash)
	var es []*ledger.Entry
	require.NoError(t, l.Lines(ctx, 0, -1, func(seq int64, line []byte) bool {
		e, err := ledger.ParseLine(line)
		require.NoError(t, err)
		es = append(es, e)
		return true
	}))
	return im, es, l
}

func lines(data []byte) [][]byte {
	ls := bytes.Split(data, []byte("\n"))
	if len(ls[len(ls)-1]) == 0 {
		ls = ls[:len(ls)-1]
	}
	return ls
}

// TestImportLedgerFixtures: every CPv2 fixture ledger, in both hash forms,
// sound or broken, comes over line for line, each entry at its line's seq
// with its line's hash, its legacy entry_hash and CPv2's verdict.
func TestImportLedgerFixtures(t *testing.T) {
	var broken map[string][][2]any
	b, err := os.ReadFile(filepath.Join(ledgers, "BROKEN.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &broken))
	files, err := filepath.Glob(filepath.Join(ledgers, "*.jsonl"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 5)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			im, es, _ := importInto(t, data)
			ls := lines(data)
			require.Len(t, es, len(ls))
			bad := map[int64]string{}
			for _, x := range broken[filepath.Base(f)] {
				bad[int64(x[0].(float64))] = x[1].(string)
			}
			require.Equal(t, len(bad) == 0, im.Valid)
			require.Equal(t, int64(len(bad)), im.Broken)
			require.Equal(t, int64(len(ls)-len(bad)), im.Verified)
			sum := sha256.Sum256(data)
			require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), im.SourceSHA256)
			for i, e := range es {
				require.Equal(t, int64(i), e.Seq)
				require.Equal(t, EventLegacyEntry, e.EventType)
				m := e.Metadata["legacy"].(map[string]any)
				ls := sha256.Sum256(ls[i])
				require.Equal(t, "sha256:"+hex.EncodeToString(ls[:]), m["line_sha256"])
				require.Equal(t, json.Number(strconv.Itoa(i)), m["line"])
				require.Equal(t, string(lines(data)[i]), m["text"])
				var orig map[string]any
				require.NoError(t, json.Unmarshal(lines(data)[i], &orig))
				require.Equal(t, orig["entry_hash"], m["entry_hash"], "the legacy entry_hash, as written")
				require.Equal(t, orig["event_type"], m["event_type"])
				require.Equal(t, orig["timestamp"], m["timestamp"])
				if code, ok := bad[int64(i)]; ok {
					require.Equal(t, Broken, e.Decision)
					require.Equal(t, "broken", m["verdict"])
					require.Equal(t, code, m["issues"].([]any)[0].(map[string]any)["code"])
					require.True(t, strings.HasPrefix(e.Reason, code+": "), e.Reason)
				} else {
					require.Equal(t, Verified, e.Decision)
					require.Equal(t, "verified", m["verdict"])
					require.Nil(t, m["issues"])
				}
			}
			if filepath.Base(f) == "session_evidence.jsonl" {
				require.Equal(t, im.Entries, im.Prefixed, "the agent runtime's sha256: form")
				require.NotEmpty(t, es[0].SubmissionID, "entry_id is the subject")
			}
		})
	}
}

// TestImportLedgerKeepsEveryLine: a line that is not an entry (blank, not
// JSON, not UTF-8, not an object) is kept, marked MALFORMED, with its
// bytes; the chain over the others is judged as verify --legacy judges it.
func TestImportLedgerKeepsEveryLine(t *testing.T) {
	sound, err := os.ReadFile(filepath.Join(ledgers, "governance.jsonl"))
	require.NoError(t, err)
	ls := lines(sound)
	junk := [][]byte{{}, []byte("not json"), {0xff, 0xfe, '{', '}'}, []byte(`["an","array"]`)}
	var data []byte
	data = append(data, ls[0]...)
	data = append(data, '\n')
	for _, j := range junk {
		data = append(append(data, j...), '\n')
	}
	for _, l := range ls[1:] {
		data = append(append(data, l...), '\n')
	}
	data = append(data, []byte(`{"tail":"no newline"}`)...)
	im, es, _ := importInto(t, data)
	require.Len(t, es, len(ls)+len(junk)+1)
	require.Equal(t, int64(len(junk)), im.Malformed)
	require.False(t, im.Valid)
	for i, j := range junk {
		e := es[1+i]
		m := e.Metadata["legacy"].(map[string]any)
		require.Equal(t, Malformed, e.Decision, "line %d", 1+i)
		sum := sha256.Sum256(j)
		require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), m["line_sha256"])
		if i == 2 {
			require.Equal(t, base64.StdEncoding.EncodeToString(j), m["text_base64"], "bytes that are not UTF-8 are kept as base64")
			require.Nil(t, m["text"])
		} else {
			require.Equal(t, string(j), m["text"])
		}
	}
	// The junk lines are skipped by the chain, as verify --legacy does:
	// the next entry still links to line 0.
	require.Equal(t, Verified, es[1+len(junk)].Decision)
	last := es[len(es)-1]
	require.Equal(t, Broken, last.Decision, "no hash, no link")
	require.Equal(t, `{"tail":"no newline"}`, last.Metadata["legacy"].(map[string]any)["text"])
	// The verdicts are verify --legacy's, issue for issue.
	rep, err := legacy.Verify(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, rep.Issues, im.Issues)
}

// TestImportLedgerLongLine: a line over MaxLineKept is kept as its hash.
func TestImportLedgerLongLine(t *testing.T) {
	long := `{"pad":"` + strings.Repeat("x", MaxLineKept) + `"}`
	_, es, _ := importInto(t, []byte(long+"\n"))
	m := es[0].Metadata["legacy"].(map[string]any)
	require.Nil(t, m["text"])
	require.Contains(t, m["text_omitted"], "kept as its sha256")
}

// TestImportLedgerRefusesNonEmpty: only into a new ledger.
func TestImportLedgerRefusesNonEmpty(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ledgers, "session_mixed.jsonl"))
	require.NoError(t, err)
	_, _, l := importInto(t, data)
	_, err = ImportLedger(context.Background(), bytes.NewReader(data), "x.jsonl", "test/x", l)
	var ie *ImportError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, "LEDGER_NOT_EMPTY", ie.Code())

	held, n, complete, err := Compare(context.Background(), l, bytes.NewReader(data))
	require.NoError(t, err)
	require.True(t, complete)
	require.Equal(t, n, held)
	other := append([]byte(`{"entry_hash":"x","previous_hash":""}`+"\n"), data...)
	held, _, complete, err = Compare(context.Background(), l, bytes.NewReader(other))
	require.NoError(t, err)
	require.False(t, complete)
	require.Zero(t, held)
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"governance.jsonl":                  "governance",
		"ledger/governance.jsonl":           "ledger-governance",
		"planes/ho1/sessions/S 1/ev.jsonl":  "planes-ho1-sessions-S-1-ev",
		"../x.jsonl":                        "x",
		"é.jsonl":                           "x",
		"_a.jsonl":                          "x_a",
		strings.Repeat("a", 200) + ".jsonl": strings.Repeat("a", 87) + "-",
	} {
		got := NameOf(in)
		require.True(t, strings.HasPrefix(got, want), "%q: %q, want %q", in, got, want)
		_, err := ImportedName(got)
		require.NoError(t, err, in)
	}
	for _, bad := range []string{"", "../x", "a/b", "a.b", strings.Repeat("a", 101), "-x"} {
		_, err := ImportedName(bad)
		require.Error(t, err, bad)
	}
}

// FuzzLegacyImportLine: whatever the bytes, every line becomes exactly one
// entry whose metadata our canonical encoder takes, with the line's hash
// and a verdict that agrees with verify --legacy.
func FuzzLegacyImportLine(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(ledgers, "*.jsonl"))
	more, _ := filepath.Glob("../../pkg/ledger/legacy/testdata/*.jsonl")
	for _, name := range append(files, more...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range lines(data) {
			f.Add(l)
		}
	}
	for _, s := range []string{"", "{}", "[]", "\xff", `{"entry_hash":1}`, `{"id":"\ud800"}`, `{"timestamp":NaN}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := legacy.Scan(bytes.NewReader(data), func(l legacy.Line) error {
			d := Draft("f.jsonl", l)
			if _, err := jcs.Marshal(d.Metadata); err != nil {
				t.Fatalf("line %d: metadata does not encode: %v", l.Seq, err)
			}
			m := d.Metadata["legacy"].(map[string]any)
			sum := sha256.Sum256(l.Raw)
			if m["line_sha256"] != "sha256:"+hex.EncodeToString(sum[:]) || m["line"] != l.Seq {
				t.Fatalf("line %d: hash or index lost", l.Seq)
			}
			if (len(l.Issues) == 0) != (d.Decision == Verified) {
				t.Fatalf("line %d: verdict %s with %d issues", l.Seq, d.Decision, len(l.Issues))
			}
			_, hasText := m["text"]
			_, hasB64 := m["text_base64"]
			if !hasText && !hasB64 {
				t.Fatalf("line %d: neither text nor bytes kept", l.Seq)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ver, _ := legacy.Verify(bytes.NewReader(data))
		if len(ver.Issues) != len(rep.Issues) || ver.Entries != rep.Entries {
			t.Fatalf("scan and verify disagree")
		}
	})
}

// TestImportLedgerEmpty: a legacy ledger with no line makes a ledger with
// none, and its checkpoint: a ledger, not a stray file G6 would flag.
func TestImportLedgerEmpty(t *testing.T) {
	im, es, l := importInto(t, nil)
	require.Zero(t, im.Entries)
	require.Empty(t, es)
	cp, err := l.ReadCheckpoint()
	require.NoError(t, err)
	require.Contains(t, string(cp), "test/x\n0\n")
}
