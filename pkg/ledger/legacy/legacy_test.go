package legacy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func verifyFile(t testing.TB, name string) Report {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// storedHash returns the entry_hash of line i of a fixture.
func storedHash(t *testing.T, name string, i int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Parse(bytes.Split(data, []byte("\n"))[i])
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]Value)["entry_hash"].(string)
}

func TestVerifyValid(t *testing.T) {
	last := storedHash(t, "valid.jsonl", 19)
	for _, name := range []string{"valid.jsonl", "valid_crlf.jsonl"} {
		rep := verifyFile(t, name)
		if rep.Entries != 20 || len(rep.Issues) != 0 || rep.LastHash != last {
			t.Errorf("%s: got %+v", name, rep)
		}
	}
}

type want struct {
	seq  int64
	id   string
	code string
	msg  string // substring of the message
}

func TestVerifyDamaged(t *testing.T) {
	h := func(i int) string { return storedHash(t, "valid.jsonl", i) }
	tests := []struct {
		file    string
		entries int64
		issues  []want
	}{
		{"damaged_edited.jsonl", 20, []want{
			{5, "evt-0005", CodeHashMismatch, fmt.Sprintf("entry_hash is %q, want ", h(5))},
		}},
		{"damaged_deleted.jsonl", 19, []want{
			{7, "evt-0008", CodeChainBroken, fmt.Sprintf("previous_hash is %q, want %q (entry_hash of seq 6)", h(7), h(6))},
		}},
		{"damaged_nohash.jsonl", 20, []want{
			{4, "evt-0004", CodeHashMismatch, "entry_hash is missing, want " + h(4)},
			{5, "evt-0005", CodeChainBroken, fmt.Sprintf("previous_hash is %q, but the entry at seq 4 has no string entry_hash to chain to", h(4))},
		}},
		{"damaged_nonjson.jsonl", 20, []want{
			{6, "", CodeMalformed, "invalid JSON: "},
			{7, "evt-0007", CodeChainBroken, fmt.Sprintf("previous_hash is %q, want %q (entry_hash of seq 5)", h(6), h(5))},
		}},
		{"damaged_inserted.jsonl", 24, []want{
			{3, "", CodeMalformed, "empty line"},
			{9, "", CodeMalformed, "not a JSON object"},
			{13, "", CodeMalformed, "invalid JSON: invalid UTF-8 byte 0xff at offset 24"},
			{16, "", CodeMalformed, "not a JSON object"},
		}},
		{"damaged_swapped.jsonl", 20, []want{
			{10, "evt-0011", CodeChainBroken, fmt.Sprintf("previous_hash is %q, want %q", h(10), h(9))},
			{11, "evt-0010", CodeChainBroken, fmt.Sprintf("previous_hash is %q, want %q", h(9), h(11))},
			{12, "evt-0012", CodeChainBroken, fmt.Sprintf("previous_hash is %q, want %q", h(11), h(10))},
		}},
		{"damaged_prevhash.jsonl", 20, []want{
			{3, "evt-0003", CodeHashMismatch, fmt.Sprintf("entry_hash is %q, want ", h(3))},
			{3, "evt-0003", CodeChainBroken, fmt.Sprintf("previous_hash is %q, want %q", strings.Repeat("f", 64), h(2))},
		}},
		{"damaged_head.jsonl", 18, []want{
			{0, "evt-0002", CodeChainBroken, fmt.Sprintf(`previous_hash is %q, want "" for the first entry`, h(1))},
		}},
		{"damaged_badhash.jsonl", 20, []want{
			{2, "", CodeHashMismatch, "entry_hash is not a string (12345), want "},
			{3, "evt-0003", CodeChainBroken, "the entry at seq 2 has no string entry_hash"},
			{6, "evt-0006", CodeHashMismatch, fmt.Sprintf("entry_hash is %q, want %s", strings.ToUpper(h(6)), h(6))},
		}},
		{"damaged_surrogate.jsonl", 3, []want{
			{1, "s-1", CodeHashMismatch, `entry cannot be hashed: text cannot be UTF-8 encoded: lone surrogate \ud800`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			rep := verifyFile(t, tt.file)
			if rep.Entries != tt.entries {
				t.Errorf("Entries = %d, want %d", rep.Entries, tt.entries)
			}
			checkIssues(t, rep.Issues, tt.issues)
		})
	}
}

func checkIssues(t *testing.T, got []Issue, want []want) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.Seq == w.seq && g.ID == w.id && g.Code == w.code && strings.Contains(g.Message, w.msg)
	}
	if !ok {
		t.Errorf("issues:\n%s\nwant:\n%+v", fmtIssues(got), want)
	}
}

func fmtIssues(issues []Issue) string {
	var b strings.Builder
	for _, is := range issues {
		fmt.Fprintf(&b, "  %d %q %s %s\n", is.Seq, is.ID, is.Code, is.Message)
	}
	return b.String()
}

// entryLine returns a correctly hashed line for fields (a JSON object text).
func entryLine(t testing.TB, fields string) string {
	v, err := Parse([]byte(fields))
	if err != nil {
		t.Fatal(err)
	}
	text, err := Dumps(v)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(text)
	return fmt.Sprintf(`{"entry_hash": %q, %s`, hex.EncodeToString(sum[:]), fields[1:])
}

func TestVerifyLines(t *testing.T) {
	a := entryLine(t, `{"id": "a", "previous_hash": ""}`)
	ha := storedHashOf(t, a)
	b := entryLine(t, fmt.Sprintf(`{"id": "b", "previous_hash": %q}`, ha))
	hb := storedHashOf(t, b)
	tests := []struct {
		name    string
		in      string
		entries int64
		issues  []want
		last    string
	}{
		{"empty", "", 0, nil, ""},
		{"newline", "\n", 1, []want{{0, "", CodeMalformed, "empty line"}}, ""},
		{"one", a + "\n", 1, nil, ha},
		{"no final newline", a + "\n" + b, 2, nil, hb},
		{"crlf", a + "\r\n" + b + "\r\n", 2, nil, hb},
		{"trailing blank", a + "\n" + b + "\n\n", 3, []want{{2, "", CodeMalformed, "empty line"}}, hb},
		{"blank in middle", a + "\n  \n" + b + "\n", 3, []want{{1, "", CodeMalformed, "empty line"}}, hb},
		{"not object", "[]\n" + a + "\n", 2, []want{{0, "", CodeMalformed, "not a JSON object"}}, ha},
		{"bom", "\ufeff" + a, 1, []want{{0, "", CodeMalformed, "invalid JSON: expecting value at offset 0"}}, ""},
		{"no previous_hash", entryLine(t, `{"id": "a"}`), 1, []want{{0, "a", CodeChainBroken, `previous_hash is missing, want "" for the first entry`}}, ""},
		{"null previous_hash", a + "\n" + entryLine(t, `{"id": 7, "previous_hash": null}`), 2, []want{{1, "", CodeChainBroken, fmt.Sprintf(`previous_hash is not a string (null), want %q (entry_hash of seq 0)`, ha)}}, ""},
		{"duplicate entry_hash keeps last", `{"entry_hash": "x", ` + a[1:], 1, nil, ha},
		{"duplicate entry_hash bad last", a[:len(a)-1] + `, "entry_hash": "x"}`, 1, []want{{0, "a", CodeHashMismatch, `entry_hash is "x", want ` + ha}}, "x"},
		{"nested entry_hash is hashed", entryLine(t, `{"id": "n", "previous_hash": "", "m": {"entry_hash": "1"}}`), 1, nil, ""},
		{"lone surrogate id", `{"id": "\udfff", "previous_hash": "", "entry_hash": "x"}`, 1, []want{{0, "\xed\xbf\xbf", CodeHashMismatch, `lone surrogate \udfff`}}, "x"},
		{"too deep", `{"a": ` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + "}", 1, []want{{0, "", CodeMalformed, "nesting deeper than 1000"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Entries != tt.entries {
				t.Errorf("Entries = %d, want %d", rep.Entries, tt.entries)
			}
			checkIssues(t, rep.Issues, tt.issues)
			if tt.last != "" && rep.LastHash != tt.last {
				t.Errorf("LastHash = %q, want %q", rep.LastHash, tt.last)
			}
		})
	}
}

func storedHashOf(t *testing.T, line string) string {
	v, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return v.(map[string]Value)["entry_hash"].(string)
}

func TestVerifyLongLine(t *testing.T) {
	big := strings.Repeat("é<&>\u2028x", 300_000) // ~3 MB line
	line := entryLine(t, fmt.Sprintf(`{"id": "big", "previous_hash": "", "blob": %q}`, big))
	rep, err := Verify(strings.NewReader(line + "\n" + line))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != 2 || len(rep.Issues) != 1 || rep.Issues[0].Seq != 1 || rep.Issues[0].Code != CodeChainBroken {
		t.Fatalf("got %d entries, issues:\n%s", rep.Entries, fmtIssues(rep.Issues))
	}
}

func TestVerifyReadError(t *testing.T) {
	a := entryLine(t, `{"id": "a", "previous_hash": ""}`)
	boom := errors.New("boom")
	r := iotest.DataErrReader(strings.NewReader(a + "\n"))
	if _, err := Verify(r); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(io.MultiReader(strings.NewReader(a+"\n{"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || rep.Entries != 1 {
		t.Fatalf("got %+v, %v", rep, err)
	}
}

func TestDumpsGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/dumps_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		In    string  `json:"in"`
		Out   *string `json:"out"`
		Error bool    `json:"error"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 5000 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		v, err := Parse([]byte(c.In))
		if c.Error {
			if err == nil {
				t.Errorf("Parse(%q) = %#v, want an error", c.In, v)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.In, err)
			continue
		}
		got, err := Dumps(v)
		switch {
		case c.Out == nil && (err == nil || !strings.Contains(err.Error(), "cannot be UTF-8 encoded")):
			t.Errorf("Dumps(%q) = %q, %v; want a UTF-8 encoding error", c.In, got, err)
		case c.Out != nil && (err != nil || string(got) != *c.Out):
			t.Errorf("Dumps(%q) = %q, %v; want %q", c.In, got, err, *c.Out)
		}
	}
}

func TestParseErrors(t *testing.T) {
	// All rejected by Python's json.loads.
	for _, in := range []string{
		"", " ", "{", "[1,]", `{"a":1,}`, "01", "-", "1.", ".5", "1e", "1e+", "+1", "[1.]",
		"nan", "inf", "-NaN", "-Inf", "Infinit", "tru", "[1 2]", `{"a" 1}`, `{1: 2}`,
		`"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, `"\ud800\uzzzz"`, "\"a\tb\"", "\"\x00\"",
		"1 2", "{} x", `"\`, "'a'", "\u00a01", "\v1", "[" + strings.Repeat("[", 1000) + strings.Repeat("]", 1001),
		"\xff", "\"\xc0\x80\"", "\"\xed\xa0\x80\"",
	} {
		if v, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = %#v, want error", in, v)
		}
	}
}

func TestParseValues(t *testing.T) {
	v, err := Parse([]byte(`{"a": 1, "a": [-0, 1E2, 10, -1e400, 1e-400, "\ud83d\ude00\ud83d\u0041", "\/"], "b": 1.5e+300}`))
	if err != nil {
		t.Fatal(err)
	}
	arr := v.(map[string]Value)["a"].([]Value)
	if arr[0] != Int("0") || arr[1] != 100.0 || arr[2] != Int("10") || arr[5] != "😀\xed\xa0\xbdA" || arr[6] != "/" {
		t.Errorf("got %#v", arr)
	}
	if _, err := Dumps(v); err == nil || err.Error() != `text cannot be UTF-8 encoded: lone surrogate \ud83d` {
		t.Errorf("Dumps error = %v", err)
	}
}

// cpv2Ledgers is where the CPv2 ledger fixtures live (made by
// gen_ledgers.py there with Python's own json.dumps and hashlib).
const cpv2Ledgers = "../../../testdata/cpv2/ledgers"

func TestVerifyCPv2Forms(t *testing.T) {
	for _, tc := range []struct {
		file              string
		entries, prefixed int64
	}{
		{"governance.jsonl", 12, 0},
		{"session_evidence.jsonl", 10, 10},
		{"session_mixed.jsonl", 10, 6},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(cpv2Ledgers, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := Verify(f)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Entries != tc.entries || rep.Prefixed != tc.prefixed || len(rep.Issues) != 0 {
				t.Fatalf("got %d entries, %d prefixed, issues:\n%s", rep.Entries, rep.Prefixed, fmtIssues(rep.Issues))
			}
			if tc.prefixed > 0 && !strings.HasPrefix(rep.LastHash, HashPrefix) {
				t.Errorf("LastHash = %q: the last entry_hash as written", rep.LastHash)
			}
		})
	}
}

func TestVerifyCPv2Broken(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(cpv2Ledgers, "BROKEN.json"))
	if err != nil {
		t.Fatal(err)
	}
	var broken map[string][][2]any
	if err := json.Unmarshal(data, &broken); err != nil {
		t.Fatal(err)
	}
	if len(broken) != 2 {
		t.Fatalf("BROKEN.json lists %d files", len(broken))
	}
	for file, lines := range broken {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(cpv2Ledgers, file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := Verify(f)
			if err != nil {
				t.Fatal(err)
			}
			var got [][2]any
			for _, is := range rep.Issues {
				got = append(got, [2]any{float64(is.Seq), is.Code})
			}
			if fmt.Sprint(got) != fmt.Sprint(lines) {
				t.Fatalf("issues:\n%s\nwant (line, code) %v", fmtIssues(rep.Issues), lines)
			}
		})
	}
}

// prefixedLine is entryLine with the entry_hash in the sha256: form.
func prefixedLine(t testing.TB, fields string) string {
	return strings.Replace(entryLine(t, fields), `{"entry_hash": "`, `{"entry_hash": "sha256:`, 1)
}

func TestVerifyPrefixedLines(t *testing.T) {
	a := prefixedLine(t, `{"id": "a", "previous_hash": ""}`)
	ha := storedHashOf(t, a)
	bare := strings.TrimPrefix(ha, HashPrefix)
	b := prefixedLine(t, fmt.Sprintf(`{"id": "b", "previous_hash": %q}`, ha))
	bBare := prefixedLine(t, fmt.Sprintf(`{"id": "b", "previous_hash": %q}`, bare))
	tests := []struct {
		name   string
		in     string
		issues []want
	}{
		{"prefixed chain", a + "\n" + b + "\n", nil},
		{"bare then prefixed", entryLine(t, `{"id": "a", "previous_hash": ""}`) + "\n" +
			prefixedLine(t, fmt.Sprintf(`{"id": "b", "previous_hash": %q}`, bare)) + "\n", nil},
		// previous_hash is the previous entry_hash as written: the bare hex
		// of a prefixed one is not it.
		{"previous without prefix", a + "\n" + bBare + "\n", []want{{1, "b", CodeChainBroken, fmt.Sprintf("want %q", ha)}}},
		{"upper-case prefix", strings.Replace(a, "sha256:", "SHA256:", 1), []want{{0, "a", CodeHashMismatch, "want " + bare}}},
		{"double prefix", strings.Replace(a, "sha256:", "sha256:sha256:", 1), []want{{0, "a", CodeHashMismatch, "want " + ha}}},
		{"prefix alone", strings.Replace(a, bare, "", 1), []want{{0, "a", CodeHashMismatch, "want " + ha}}},
		{"edited prefixed", strings.Replace(a, `"id": "a"`, `"id": "a2"`, 1), []want{{0, "a2", CodeHashMismatch, `entry_hash is "sha256:`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Verify(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			checkIssues(t, rep.Issues, tt.issues)
		})
	}
}
