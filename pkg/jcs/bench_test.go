package jcs

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchEntry is a typical ~300-byte ledger entry; benchValue is the same
// entry built as a writer builds it, with Go numbers.
const benchEntry = `{"actor":"alice","decision":"ALLOW","event_type":"TOOL_CALL","id":"LED-0123456789abcdef",` +
	`"metadata":{"args":["ls","-la"],"n":3,"ratio":0.25,"tool":"bash"},"previous_hash":"` +
	`9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","reason":"read-only tool",` +
	`"seq":1234,"timestamp":"2025-01-02T03:04:05.123456Z"}`

func benchValue() map[string]any {
	return map[string]any{
		"actor":         "alice",
		"decision":      "ALLOW",
		"event_type":    "TOOL_CALL",
		"id":            "LED-0123456789abcdef",
		"metadata":      map[string]any{"tool": "bash", "args": []any{"ls", "-la"}, "n": 3, "ratio": 0.25},
		"previous_hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"reason":        "read-only tool",
		"seq":           int64(1234),
		"timestamp":     "2025-01-02T03:04:05.123456Z",
	}
}

func TestBenchEntry(t *testing.T) {
	got, err := Marshal(benchValue())
	require.NoError(t, err)
	require.Equal(t, benchEntry, string(got))
}

func BenchmarkCheck(b *testing.B) {
	data := []byte(benchEntry)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	v := benchValue()
	b.SetBytes(int64(len(benchEntry)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend is Marshal into a reused buffer, as an appender would.
func BenchmarkAppend(b *testing.B) {
	v := benchValue()
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(benchEntry)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = Append(buf[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	data := []byte(benchEntry)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonicalize(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON is encoding/json's Marshal of the same value, for
// comparison only: its output is not canonical in general.
func BenchmarkEncodingJSON(b *testing.B) {
	v := benchValue()
	b.SetBytes(int64(len(benchEntry)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}
