package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/pgtest"
)

// provePlanes are two planes whose HO3 ledgers hold the same number of
// entries, one in the file store, one moved to PostgreSQL by cp-ledger
// migrate; made once per run (the benchmark function runs more than once).
var provePlanes struct {
	once       sync.Once
	dir        string // removed by TestMain (pgtest.Sweep: also if it dies)
	file, pg   string
	dsn        string
	pooled     string // dsn through a PgBouncer in session pooling
	pooledSkip string // why there is none
	err        error
	setupTimes string
}

const proveEntries = 1_000_000

func makeProvePlanes(b *testing.B) {
	p := &provePlanes
	p.once.Do(func() {
		dir, err := os.MkdirTemp("", "cp-bench-prove-")
		if err != nil {
			p.err = err
			return
		}
		p.dir = dir
		pgtest.Sweep(dir)             // ~600 MB: removed even if this process dies
		dsn, _, err := pgtest.NewDB() // dropped with the cluster
		if err != nil {
			p.err = err
			return
		}
		p.dsn = dsn
		// Without PgBouncer the pooled variant is left out (said in the
		// log), unless in CI.
		if p.pooled, err = pgtest.PooledDSN(dsn, pgtest.Session); err != nil {
			if os.Getenv("CI") == "true" {
				p.err = err
				return
			}
			p.pooledSkip = err.Error()
		}
		// Bootstrap writes 5 entries to HO3; the move to PostgreSQL adds
		// its record: both ledgers end at proveEntries.
		for _, root := range []string{filepath.Join(dir, "file"), filepath.Join(dir, "pg")} {
			n := proveEntries - 5
			if filepath.Base(root) == "pg" {
				n--
			}
			reqs := filepath.Join(dir, "requests.ndjson")
			if p.err = os.WriteFile(reqs, requests(n), 0o644); p.err != nil {
				return
			}
			if out, err := exec.Command(filepath.Join(binDir, "cp-install"), "bootstrap", "--root", root).CombinedOutput(); err != nil {
				p.err = &setupError{"bootstrap", err, out}
				return
			}
			cmd := exec.Command(filepath.Join(binDir, "cp-ledger"), "append", "--root", root)
			in, err := os.Open(reqs)
			if err != nil {
				p.err = err
				return
			}
			cmd.Stdin, cmd.Stdout = in, nil
			out, err := cmd.CombinedOutput()
			in.Close()
			if err != nil {
				p.err = &setupError{"append", err, out}
				return
			}
		}
		os.Remove(filepath.Join(dir, "requests.ndjson")) // ~170 MB, read
		p.file, p.pg = filepath.Join(dir, "file"), filepath.Join(dir, "pg")
		start := time.Now()
		cmd := exec.Command(filepath.Join(binDir, "cp-ledger"), "migrate", "--root", p.pg, "--to", "postgres")
		cmd.Env = append(os.Environ(), "CONTROL_PLANE_LEDGER_DSN="+dsn)
		if out, err := cmd.CombinedOutput(); err != nil {
			p.err = &setupError{"migrate", err, out}
			return
		}
		p.setupTimes = time.Since(start).String()
	})
	if p.err != nil {
		b.Fatal(p.err)
	}
}

type setupError struct {
	what string
	err  error
	out  []byte
}

func (e *setupError) Error() string { return e.what + ": " + e.err.Error() + "\n" + string(e.out) }

// BenchmarkProve1MPostgresOverFile is issue 18's proof target as a
// measurement: each iteration runs one `cp-ledger prove --seq S` process
// against a 1,000,000-entry HO3 ledger in the file store and one against
// the same-size ledger in PostgreSQL (moved there by cp-ledger migrate;
// connected over the server's Unix socket), back to back, and reports the
// median of the paired differences (ms-pg-over-file) and of each. The
// proof is of an entry that no checkpoint covers alone: the current tree.
//
// Its floor is measured in the same iterations: a bare process and one
// that only connects with pgx and asks SELECT 1 (testdata/pgfloor), their
// median paired difference ms-floor-over-bare: what any process pays to
// ask the database one question (the server starting a backend for it,
// and the round trips), which no change to the prove process removes;
// and ms-pgconnfloor-over-bare, the same through pgconn alone (`pgfloor
// pgconn`), as a pgstore reader connects: the pgx floor less pgx.Conn's
// type map (pgtype.NewMap), which a prove no longer builds.
//
// The pooled variant is in the same iterations: the same prove of the
// same ledger with the DSN through a PgBouncer in session pooling on a
// Unix socket (a throwaway one beside the throwaway cluster,
// pgtest.Pooled), ms-pooled-over-file, and the floor through it,
// ms-pooledfloor-over-bare: the pooler keeps the server's backends
// between processes, so a process connects to the pooler, not to a
// backend being started for it.
func BenchmarkProve1MPostgresOverFile(b *testing.B) {
	if !pgtest.Available() {
		b.Skip("no PostgreSQL")
	}
	makeProvePlanes(b)
	b.Logf("migrating %d entries to PostgreSQL took %s (the machine is shared)", proveEntries, provePlanes.setupTimes)
	direct := append(os.Environ(), "CONTROL_PLANE_LEDGER_DSN="+provePlanes.dsn)
	pooled := append(os.Environ(), "CONTROL_PLANE_LEDGER_DSN="+provePlanes.pooled)
	if provePlanes.pooled == "" {
		b.Logf("the pooled variant is left out: %s", provePlanes.pooledSkip)
		pooled = direct // run, not reported: the same order of processes
	}
	run := func(root string, env []string) time.Duration {
		t0 := time.Now()
		cmd := exec.Command(filepath.Join(binDir, "cp-ledger"), "prove", "--root", root, "--seq", "777777")
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("prove %s: %v\n%s", root, err, out.String())
		}
		d := time.Since(t0)
		if !bytes.Contains(out.Bytes(), []byte(`"tree_size":1000000`)) {
			b.Fatalf("prove %s: %s", root, out.String())
		}
		return d
	}
	bare := func(name string, env []string, args ...string) time.Duration {
		t0 := time.Now()
		cmd := exec.Command(filepath.Join(binDir, name), args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		return time.Since(t0)
	}
	var diffs, files, pgs, floors, rfloors, pdiffs, ppgs, pfloors, prfloors []time.Duration
	b.ResetTimer()
	for i := range b.N {
		var f, p, pp, z, fl, rfl, pfl, prfl time.Duration
		if i%2 == 0 {
			f, p, pp = run(provePlanes.file, direct), run(provePlanes.pg, direct), run(provePlanes.pg, pooled)
			z, fl, pfl = bare("bare", direct), bare("pgfloor", direct), bare("pgfloor", pooled)
			rfl, prfl = bare("pgfloor", direct, "pgconn"), bare("pgfloor", pooled, "pgconn")
		} else {
			prfl, rfl = bare("pgfloor", pooled, "pgconn"), bare("pgfloor", direct, "pgconn")
			pfl, fl, z = bare("pgfloor", pooled), bare("pgfloor", direct), bare("bare", direct)
			pp, p, f = run(provePlanes.pg, pooled), run(provePlanes.pg, direct), run(provePlanes.file, direct)
		}
		files, pgs, diffs = append(files, f), append(pgs, p), append(diffs, p-f)
		floors, rfloors = append(floors, fl-z), append(rfloors, rfl-z)
		if provePlanes.pooled != "" {
			ppgs, pdiffs = append(ppgs, pp), append(pdiffs, pp-f)
			pfloors, prfloors = append(pfloors, pfl-z), append(prfloors, prfl-z)
		}
	}
	med := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(diffs), "ms-pg-over-file")
	b.ReportMetric(med(files), "ms-file")
	b.ReportMetric(med(pgs), "ms-pg")
	b.ReportMetric(med(floors), "ms-floor-over-bare")
	b.ReportMetric(med(rfloors), "ms-pgconnfloor-over-bare")
	if provePlanes.pooled != "" {
		b.ReportMetric(med(pdiffs), "ms-pooled-over-file")
		b.ReportMetric(med(ppgs), "ms-pooled")
		b.ReportMetric(med(pfloors), "ms-pooledfloor-over-bare")
		b.ReportMetric(med(prfloors), "ms-pooledpgconnfloor-over-bare")
	}
}
