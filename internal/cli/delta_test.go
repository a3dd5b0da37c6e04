package cli

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// A streaming verb's delta lines are skipped by the reader downstream,
// line by line (NDJSON) and when stdin is read whole.
func TestDeltasSkipped(t *testing.T) {
	in := `{"status":"delta","text":"par"}` + "\n" + `  {"status":"delta","text":"tial\n"}` + "\n" +
		`{"status":"ok","result":{"text":"partial"}}` + "\n"
	line, err := readLine(bufio.NewReader(strings.NewReader(in)))
	if err != nil || !strings.HasPrefix(string(line), `{"status":"ok"`) {
		t.Fatalf("readLine: %q, %v", line, err)
	}
	whole, err := readAllTrim(strings.NewReader(in), MaxRequest)
	if err != nil || !strings.HasPrefix(string(whole), `{"status":"ok"`) {
		t.Fatalf("readAllTrim: %q, %v", whole, err)
	}
	if b, _ := readAllTrim(strings.NewReader(`{"status":"delta","text":"x"}`), MaxRequest); b != nil {
		t.Fatalf("only deltas: %q, want no request", b)
	}
	// A request that merely holds a status field elsewhere is a request.
	if isDelta([]byte(`{"event_type":"X","status":"delta"}`)) {
		t.Fatal("not a delta line")
	}
}

// FuzzSkipDeltas: what skipDeltas keeps is a suffix of its input that
// starts no delta line, and input without a leading delta line is kept
// whole.
func FuzzSkipDeltas(f *testing.F) {
	f.Add([]byte(`{"status":"delta","text":"a"}` + "\n" + `{"status":"ok","result":{}}`))
	f.Add([]byte(`{"status":"delta"`))
	f.Add([]byte("\n\n{\"a\":1}"))
	f.Add([]byte(`  {"status":"delta","text":"\n"}` + "\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out := skipDeltas(b)
		if !bytes.HasSuffix(b, out) {
			t.Fatalf("%q is not a suffix of %q", out, b)
		}
		if isDelta(out) {
			t.Fatalf("%q still starts with a delta line", out)
		}
		if !isDelta(b) && !bytes.Equal(out, b) {
			t.Fatalf("%q changed to %q", b, out)
		}
	})
}
