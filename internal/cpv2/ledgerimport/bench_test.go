package ledgerimport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/legacy"
)

// benchLegacy makes n lines of a sound CPv2 ledger (the sha256: form
// for odd lines), as json.dumps writes them.
func benchLegacy(b *testing.B, n int) []byte {
	b.Helper()
	var buf bytes.Buffer
	prev := ""
	for i := range n {
		e := map[string]any{"id": fmt.Sprintf("LED-%08x", i), "timestamp": "2025-11-03T09:00:00.000017Z", "event_type": "GATE_PASSED",
			"submission_id": "PAK-X", "decision": "pass", "reason": "G0: ok", "metadata": map[string]any{"n": i}, "previous_hash": prev}
		// Python's json.dumps(sort_keys=True) text for these values.
		text := fmt.Sprintf(`{"decision": "pass", "event_type": "GATE_PASSED", "id": "%s", "metadata": {"n": %d}, "previous_hash": "%s", "reason": "G0: ok", "submission_id": "PAK-X", "timestamp": "2025-11-03T09:00:00.000017Z"}`,
			e["id"], i, prev)
		sum := sha256.Sum256([]byte(text))
		h := hex.EncodeToString(sum[:])
		if i%2 == 1 {
			h = "sha256:" + h
		}
		e["entry_hash"] = h
		line, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		prev = h
	}
	return buf.Bytes()
}

// BenchmarkImportLedger imports a 10,000-line CPv2 ledger into a new file
// ledger; BenchmarkImportLedgerOverAppend appends the same entries'
// drafts, already made, to a new ledger: the baseline, the cost of the
// store alone. Run them together (-bench ImportLedger -count 5).
func BenchmarkImportLedger(b *testing.B) {
	data := benchLegacy(b, 10000)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		l, err := ledger.OpenWriter(filepath.Join(b.TempDir(), "i.jsonl"), ledger.Options{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		im, err := ImportLedger(ctx, bytes.NewReader(data), "x.jsonl", "test/x", l)
		if err != nil || !im.Valid || im.Entries != 10000 {
			b.Fatalf("%v %+v", err, im)
		}
		l.Close()
	}
}

func BenchmarkImportLedgerOverAppend(b *testing.B) {
	data := benchLegacy(b, 10000)
	ctx := context.Background()
	var drafts []ledger.Draft
	_, err := scanDrafts(data, &drafts)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		l, err := ledger.OpenWriter(filepath.Join(b.TempDir(), "i.jsonl"), ledger.Options{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < len(drafts); i += importBatch {
			if _, err := l.Append(ctx, drafts[i:min(i+importBatch, len(drafts))]); err != nil {
				b.Fatal(err)
			}
		}
		l.Close()
	}
}

// scanDrafts makes the LEGACY_ENTRY drafts of data.
func scanDrafts(data []byte, out *[]ledger.Draft) (int, error) {
	_, err := legacy.Scan(bytes.NewReader(data), func(l legacy.Line) error {
		*out = append(*out, Draft("x.jsonl", l))
		return nil
	})
	return len(*out), err
}
