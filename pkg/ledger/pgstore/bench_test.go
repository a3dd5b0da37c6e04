package pgstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/pgtest"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/ledger/storetest"
)

// BenchmarkAppend: one writer's appends of batches of 1 and 100, with the
// plane's checkpoint key, with and without the copy outside the database.
// The test cluster runs with fsync off: these measure the driver's own
// cost, not a durable commit (the issue's targets need a durable one).
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{1, 100} {
		for _, outside := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%d/outside=%v", batch, outside), func(b *testing.B) {
				dsn := pgtest.DB(b)
				k, _ := storetest.Key(b, "bench/ho3/governance")
				file := ""
				if outside {
					file = filepath.Join(b.TempDir(), "governance.checkpoint")
				}
				s := open(b, dsn, "governance", ledger.Options{Actor: "bench", Checkpoint: k}, file)
				drafts := make([]ledger.Draft, batch)
				for i := range drafts {
					drafts[i] = ledger.Draft{EventType: "EV", SubmissionID: "S", Metadata: map[string]any{"op_id": "OP-1"}}
				}
				b.ResetTimer()
				for b.Loop() {
					if _, err := s.Append(ctx, drafts); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}

// BenchmarkWriterProcesses: 8 writer processes streaming batches of 100
// (the issue's target shape), each with the plane's key and the copy
// outside; entries/s in total. fsync is off in the test cluster unless
// PGTEST_DURABLE=1. Each iteration also runs the same through a PgBouncer
// beside the cluster, in session pooling (pooled-entries/s) and in
// transaction pooling with default_query_exec_mode=exec
// (txpooled-entries/s), the three in an order that turns each iteration.
func BenchmarkWriterProcesses(b *testing.B) {
	ways := []struct {
		unit string
		dsn  func(string) string
	}{
		{"entries/s", func(dsn string) string { return dsn }},
		{"pooled-entries/s", func(dsn string) string { return pgtest.Pooled(b, dsn, pgtest.Session) }},
		{"txpooled-entries/s", func(dsn string) string {
			return pgtest.Pooled(b, dsn, pgtest.Transaction) + " default_query_exec_mode=exec"
		}},
	}
	if !pgtest.PoolerAvailable() && os.Getenv("CI") != "true" {
		b.Logf("no PgBouncer: direct connections only")
		ways = ways[:1]
	}
	took := make([]time.Duration, len(ways))
	i := 0
	for b.Loop() {
		for k := range ways {
			w := ways[(i+k)%len(ways)]
			b.StopTimer()
			dsn := w.dsn(pgtest.DB(b))
			skey, _ := processKey(b)
			ckpt := filepath.Join(b.TempDir(), "governance.checkpoint")
			b.StartTimer()
			start := time.Now()
			cmds, results := startWriters(b, 8, 20, 100, dsn, skey, ckpt)
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					b.Fatalf("writer %d (%s): %v", i, w.unit, err)
				}
				<-results[i]
			}
			took[(i+k)%len(ways)] += time.Since(start)
		}
		i++
	}
	for k, w := range ways {
		b.ReportMetric(float64(b.N*8*20*100)/took[k].Seconds(), w.unit)
	}
}

// BenchmarkVerify100k: ledger.Verify over the Store interface of a
// PostgreSQL ledger of 100,000 entries; entries/s. "appended": right
// after the appends (the first read also sets the new rows' hint bits,
// and the planner has no statistics yet); "vacuumed": after a VACUUM
// (ANALYZE), as autovacuum leaves a table after a bulk of inserts and as
// an import or a migrate leaves it (Store.Import).
func BenchmarkVerify100k(b *testing.B) {
	const n, batch = 100_000, 1000
	dsn := pgtest.DB(b)
	s := open(b, dsn, "governance", ledger.Options{Actor: "bench"}, "")
	drafts := make([]ledger.Draft, batch)
	for i := range drafts {
		drafts[i] = ledger.Draft{EventType: "EV", SubmissionID: "S", Reason: "r", Metadata: map[string]any{"i": i}}
	}
	for range n / batch {
		if _, err := s.Append(ctx, drafts); err != nil {
			b.Fatal(err)
		}
	}
	verify := func(b *testing.B) {
		for b.Loop() {
			rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{})
			if err != nil || !rep.Valid {
				b.Fatal(err, rep.Issues)
			}
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("appended", verify)
	s.vacuum(ctx)
	b.Run("vacuumed", verify)
}
