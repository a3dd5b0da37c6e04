package ledger

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/control-plane/cp/internal/testenv"
)

// benchDraft is a typical ~300-byte entry once encoded.
func benchDraft(i int) Draft {
	return Draft{EventType: "TOOL_CALL", SubmissionID: fmt.Sprintf("WO-20261124-%06d", i), Decision: "ALLOW",
		Reason: "tool call within work-order scope", PromptsUsed: []string{"PRM-ADMIN-EXPLAIN-001"},
		Metadata: map[string]any{"tool": "bash", "args": []any{"ls", "-la"}, "n": json.Number("3"), "ratio": json.Number("0.25"), "_tier": "HO1"}}
}

// BenchmarkAppendBatch measures durable appends in batches of 4096, as the
// cp-ledger append stream group-commits them.
func BenchmarkAppendBatch(b *testing.B) {
	path := filepath.Join(b.TempDir(), "b.jsonl")
	l, err := OpenWriter(path, Options{Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	drafts := make([]Draft, 4096)
	for i := range drafts {
		drafts[i] = benchDraft(i)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(ctx, drafts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(drafts))/b.Elapsed().Seconds(), "entries/s")
	st, _ := os.Stat(path)
	b.ReportMetric(float64(st.Size())/float64(b.N*len(drafts)), "bytes/entry")
}

var (
	bigOnce sync.Once
	bigPath string
	bigErr  error
)

// bigLedger builds a 1,000,000-entry ledger once per test process.
func bigLedger(b *testing.B) string {
	bigOnce.Do(func() {
		dir, err := testenv.MkdirTemp("cp-bench-")
		if err != nil {
			bigErr = err
			return
		}
		bigPath = filepath.Join(dir, "big.jsonl")
		l, err := OpenWriter(bigPath, Options{Actor: "bench"})
		if err != nil {
			bigErr = err
			return
		}
		defer l.Close()
		drafts := make([]Draft, 10000)
		for i := range drafts {
			drafts[i] = benchDraft(i)
		}
		for range 100 {
			if _, err := l.Append(ctx, drafts); err != nil {
				bigErr = err
				return
			}
		}
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigPath != "" {
		os.RemoveAll(filepath.Dir(bigPath))
	}
	os.Exit(code)
}

// BenchmarkVerify1M verifies a 1,000,000-entry ledger end to end.
func BenchmarkVerify1M(b *testing.B) {
	path := bigLedger(b)
	b.ResetTimer()
	for range b.N {
		rep, err := verifyPath(ctx, path, VerifyOptions{})
		if err != nil || !rep.Valid || rep.Entries != 1_000_000 {
			b.Fatalf("verify: %v %+v", err, rep.Issues)
		}
	}
	b.ReportMetric(float64(b.N)*1e6/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkVerify1MSeam verifies the same ledger through the Store
// interface alone, as Verify reads a driver other than the file store
// (whose ReadHashes reads one hash a call: a database driver's would not).
func BenchmarkVerify1MSeam(b *testing.B) {
	s, err := OpenFileStore(bigLedger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for range b.N {
		rep, err := Verify(ctx, seamOnly{s}, VerifyOptions{})
		if err != nil || !rep.Valid || rep.Entries != 1_000_000 {
			b.Fatalf("verify: %v %+v", err, rep.Issues)
		}
	}
	b.ReportMetric(float64(b.N)*1e6/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkProve1M is one inclusion proof (State, stored checkpoint check
// and the proof itself) at 1,000,000 entries.
func BenchmarkProve1M(b *testing.B) {
	l, err := Open(bigLedger(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	for i := range b.N {
		p, err := ProveInclusion(ctx, l, int64(i*7919%1_000_000), 0, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if err := VerifyInclusion(p, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkConsistency1M is one consistency proof at 1,000,000 entries.
func BenchmarkConsistency1M(b *testing.B) {
	l, err := Open(bigLedger(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ResetTimer()
	for i := range b.N {
		if _, err := ProveConsistency(ctx, l, int64(1+i*7919%999_999), 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFindByEventType finds the 10 entries of a rare event type in a
// 200,000-entry ledger: through the index (Find) and by a scan.
func BenchmarkFindByEventType(b *testing.B) {
	path := filepath.Join(b.TempDir(), "find.jsonl")
	l, err := OpenWriter(path, Options{Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	drafts := make([]Draft, 10000)
	for i := range 20 {
		for j := range drafts {
			drafts[j] = benchDraft(i*10000 + j)
		}
		if i%2 == 0 {
			drafts[i*397%10000].EventType = "RARE"
		}
		if _, err := l.Append(ctx, drafts); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	q := Query{EventTypes: []string{"RARE"}}
	for _, mode := range []string{"index", "scan"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				r, err := Open(path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				count := func(*Entry) bool { n++; return true }
				if mode == "index" {
					err = r.Find(ctx, q, count)
				} else {
					err = r.scan(ctx, q, 0, count)
				}
				r.Close()
				if err != nil || n != 10 {
					b.Fatalf("%d found, %v", n, err)
				}
			}
		})
	}
}

// BenchmarkFindByID opens the 1,000,000-entry ledger and finds one entry
// by its id, as cp-trace explain LED-... does: the posting at the seq the
// id names (a binary search of the postings), the id's own key (no
// posting: every id here names its seq), the entry read and checked.
func BenchmarkFindByID(b *testing.B) {
	path := bigLedger(b)
	l, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for _, seq := range []int64{1, 500_000, 999_999} {
		err := l.Find(ctx, Query{EventTypes: []string{benchDraft(int(seq)).EventType}, From: seq}, func(e *Entry) bool {
			ids = append(ids, e.ID)
			return false
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	b.ResetTimer()
	for i := range b.N {
		r, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := r.Find(ctx, Query{ID: ids[i%len(ids)]}, func(*Entry) bool { n++; return true }); err != nil || n != 1 {
			b.Fatalf("%d entries, %v", n, err)
		}
		r.Close()
	}
}
