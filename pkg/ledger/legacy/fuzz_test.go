package legacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func addFixtureSeeds(f *testing.F, lines bool) {
	files, _ := filepath.Glob("testdata/*.jsonl")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		if lines {
			for _, l := range bytes.Split(data, []byte("\n")) {
				f.Add(l)
			}
		}
	}
}

func FuzzVerify(f *testing.F) {
	addFixtureSeeds(f, false)
	for _, s := range []string{"", "\n", "\n\n", "{}", "{}\n", "{}\n\n{}", "[]\r\n{\"entry_hash\":1}", `{"previous_hash":"","entry_hash":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Verify(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		lines := int64(bytes.Count(data, []byte("\n")))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		if rep.Entries != lines {
			t.Fatalf("Entries = %d, want %d", rep.Entries, lines)
		}
		last := int64(-1)
		malformed := map[int64]bool{}
		for _, is := range rep.Issues {
			if is.Seq < last || is.Seq >= rep.Entries || is.Message == "" {
				t.Fatalf("bad issue %+v after seq %d", is, last)
			}
			last = is.Seq
			switch is.Code {
			case CodeMalformed:
				malformed[is.Seq] = true
				if is.ID != "" {
					t.Fatalf("MALFORMED with ID: %+v", is)
				}
			case CodeHashMismatch, CodeChainBroken:
				if malformed[is.Seq] {
					t.Fatalf("MALFORMED entry with more issues: %+v", rep.Issues)
				}
			default:
				t.Fatalf("bad code: %+v", is)
			}
		}
	})
}

func FuzzDumps(f *testing.F) {
	addFixtureSeeds(f, true)
	data, err := os.ReadFile("testdata/dumps_golden.json")
	if err != nil {
		f.Fatal(err)
	}
	var cases []struct{ In string }
	if err := json.Unmarshal(data, &cases); err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		f.Add([]byte(c.In))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Parse(data)
		if err != nil {
			return
		}
		d1, err := Dumps(v)
		if err != nil {
			if !strings.Contains(err.Error(), "cannot be UTF-8 encoded") {
				t.Fatalf("Dumps: %v", err)
			}
			return
		}
		if !utf8.Valid(d1) {
			t.Fatalf("Dumps gave invalid UTF-8: %q", d1)
		}
		v2, err := Parse(d1)
		if err != nil {
			t.Fatalf("Parse(Dumps) = %v for %q", err, d1)
		}
		d2, err := Dumps(v2)
		if err != nil || !bytes.Equal(d1, d2) {
			t.Fatalf("unstable:\n%q\n%q (%v)", d1, d2, err)
		}
	})
}

// legacyLedger returns n chained entries written like the Python system did.
func legacyLedger(tb testing.TB, n int) []byte {
	var buf bytes.Buffer
	prev := ""
	for i := range n {
		fields := fmt.Sprintf(`{"id": "evt-%06d", "timestamp": "2024-03-01T12:00:%02dZ", "event_type": "decision.made", `+
			`"submission_id": "sub-%d", "decision": "approve", "reason": "score 0.%d above threshold — ok ✅", `+
			`"prompts_used": ["p-1", "p-2"], "metadata": {"score": 0.%d, "weight": 1.0, "tokens": %d, "tags": {"z": true, "a": null}}, `+
			`"previous_hash": %q}`, i, i%60, i/3, i%97+1, i%97+1, i*31, prev)
		line := entryLine(tb, fields)
		v, _ := Parse([]byte(line))
		prev = v.(map[string]Value)["entry_hash"].(string)
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func TestLegacyLedger(t *testing.T) {
	data := legacyLedger(t, 100)
	rep, err := Verify(bytes.NewReader(data))
	if err != nil || rep.Entries != 100 || len(rep.Issues) != 0 {
		t.Fatalf("got %+v, %v", rep, err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	v, _ := Parse(lines[len(lines)-1])
	if want := v.(map[string]Value)["entry_hash"]; rep.LastHash != want {
		t.Fatalf("LastHash = %q, want %q", rep.LastHash, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	data := legacyLedger(b, 10_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Verify(bytes.NewReader(data))
		if err != nil || rep.Entries != 10_000 || len(rep.Issues) != 0 {
			b.Fatalf("got %d entries, %d issues, %v", rep.Entries, len(rep.Issues), err)
		}
	}
}
