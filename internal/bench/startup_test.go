package bench

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tools are the binaries whose start-up the benchmarks below measure.
var tools = []string{"cp-ledger", "cp-install", "cp-pkg", "cp-gate", "cp-auth", "cp-wo", "cp-trace", "cp-route", "cp-llm", "cp-mcp"}

// BenchmarkStartOverBare is what being one of our binaries costs a process
// before it does anything: `cp-x -version` (package initialisation, the
// runtime's start, the pages a bigger binary faults in) minus a bare Go
// process, run back to back; the median of the paired differences.
func BenchmarkStartOverBare(b *testing.B) {
	for _, tool := range tools {
		b.Run(tool, func(b *testing.B) {
			stdin, stdout := tempFiles(b, nil)
			d := paired(b, stdin, stdout, [][]string{{bin("bare")}, {bin(tool), "-version"}})
			b.ReportMetric(ms(d[1]), "ms-over-bare")
		})
	}
}

// BenchmarkInit is a binary's package initialisation as the runtime
// reports it (GODEBUG=inittrace=1, `cp-x -version`): the medians over the
// iterations of the per-process sums of init time and bytes allocated,
// and the number of packages with init work. Its figures move with the
// machine's load like any timing; the package count does not.
func BenchmarkInit(b *testing.B) {
	for _, tool := range tools {
		b.Run(tool, func(b *testing.B) {
			var times, allocs []float64
			pkgs := 0
			for range b.N {
				t, a, n := inittrace(b, bin(tool))
				times, allocs, pkgs = append(times, t), append(allocs, a), n
			}
			b.ReportMetric(median(times), "init-ms")
			b.ReportMetric(median(allocs)/1024, "init-KB")
			b.ReportMetric(float64(pkgs), "packages")
		})
	}
}

// BenchmarkSingleAppendOverBaseline is BenchmarkSingleAppendOverBare paired
// against another build of cp-ledger as well, to measure a change in the
// same minutes as the code before it: CP_BENCH_BASELINE names a directory
// holding that build (for example `git worktree add /tmp/old COMMIT` and
// `make -C /tmp/old build`, then CP_BENCH_BASELINE=/tmp/old/bin). Each
// iteration runs bare, the baseline's append and this tree's append (each
// onto its own 10,000-entry ledger) back to back; it reports the medians
// of ms-over-bare for both and of this tree's time over the baseline's.
// Without CP_BENCH_BASELINE it is skipped.
func BenchmarkSingleAppendOverBaseline(b *testing.B) {
	base := os.Getenv("CP_BENCH_BASELINE")
	if base == "" {
		b.Skip("CP_BENCH_BASELINE (a directory holding another build's cp-ledger) not set")
	}
	dir := b.TempDir()
	ours, theirs := filepath.Join(dir, "ours.jsonl"), filepath.Join(dir, "theirs.jsonl")
	baseBin := filepath.Join(base, "cp-ledger")
	stdin, stdout := tempFiles(b, requests(10_000))
	runCmd(b, stdin, stdout, []string{bin("cp-ledger"), "append", "--ledger", ours})
	runCmd(b, stdin, stdout, []string{baseBin, "append", "--ledger", theirs})
	stdin, stdout = tempFiles(b, requests(1))
	d := paired(b, stdin, stdout, [][]string{{bin("bare")},
		{baseBin, "append", "--ledger", theirs}, {bin("cp-ledger"), "append", "--ledger", ours}})
	b.ReportMetric(ms(d[2]), "ms-over-bare")
	b.ReportMetric(ms(d[1]), "baseline-ms-over-bare")
	b.ReportMetric(ms(d[3]), "ms-over-baseline")
}

// BenchmarkSinglePlaneAppendOverBaseline is BenchmarkSinglePlaneAppendOverBare
// paired against the build in CP_BENCH_BASELINE as well (see
// BenchmarkSingleAppendOverBaseline): each build appends one entry to the
// own ledger of its own plane (bootstrapped by this tree's cp-install,
// 10,000 entries), checking the stored checkpoint and signing the next.
func BenchmarkSinglePlaneAppendOverBaseline(b *testing.B) {
	base := os.Getenv("CP_BENCH_BASELINE")
	if base == "" {
		b.Skip("CP_BENCH_BASELINE (a directory holding another build's cp-ledger) not set")
	}
	dir := b.TempDir()
	ours, theirs := filepath.Join(dir, "ours"), filepath.Join(dir, "theirs")
	baseBin := filepath.Join(base, "cp-ledger")
	stdin, stdout := tempFiles(b, requests(10_000))
	for _, root := range []string{ours, theirs} {
		if out, err := exec.Command(bin("cp-install"), "bootstrap", "--root", root).CombinedOutput(); err != nil {
			b.Fatalf("bootstrap: %v\n%s", err, out)
		}
	}
	runCmd(b, stdin, stdout, []string{bin("cp-ledger"), "append", "--root", ours})
	runCmd(b, stdin, stdout, []string{baseBin, "append", "--root", theirs})
	stdin, stdout = tempFiles(b, requests(1))
	d := paired(b, stdin, stdout, [][]string{{bin("bare")},
		{baseBin, "append", "--root", theirs}, {bin("cp-ledger"), "append", "--root", ours}})
	b.ReportMetric(ms(d[2]), "ms-over-bare")
	b.ReportMetric(ms(d[1]), "baseline-ms-over-bare")
	b.ReportMetric(ms(d[3]), "ms-over-baseline")
}

// BenchmarkStartOverBaseline is BenchmarkStartOverBare paired against the
// build in CP_BENCH_BASELINE (see BenchmarkSingleAppendOverBaseline), for
// each tool that build has.
func BenchmarkStartOverBaseline(b *testing.B) {
	base := os.Getenv("CP_BENCH_BASELINE")
	if base == "" {
		b.Skip("CP_BENCH_BASELINE (a directory holding another build's binaries) not set")
	}
	for _, tool := range tools {
		b.Run(tool, func(b *testing.B) {
			baseBin := filepath.Join(base, tool)
			if _, err := os.Stat(baseBin); err != nil {
				b.Skipf("%s: not in the baseline", tool)
			}
			stdin, stdout := tempFiles(b, nil)
			d := paired(b, stdin, stdout, [][]string{{bin("bare")}, {baseBin, "-version"}, {bin(tool), "-version"}})
			b.ReportMetric(ms(d[2]), "ms-over-bare")
			b.ReportMetric(ms(d[1]), "baseline-ms-over-bare")
			b.ReportMetric(ms(d[3]), "ms-over-baseline")
		})
	}
}

func bin(name string) string { return filepath.Join(binDir, name) }

// paired runs cmds back to back b.N times and returns the medians of each
// command's time minus the first's (d[0] is 0), and last of all the median
// of the last command's time minus the one before it.
func paired(b *testing.B, stdin, stdout *os.File, cmds [][]string) []time.Duration {
	diffs := make([][]time.Duration, len(cmds)+1)
	took := make([]time.Duration, len(cmds))
	b.ResetTimer()
	for range b.N {
		for i, c := range cmds {
			t := time.Now()
			runCmd(b, stdin, stdout, c)
			took[i] = time.Since(t)
		}
		for i := range cmds {
			diffs[i] = append(diffs[i], took[i]-took[0])
		}
		n := len(cmds)
		diffs[n] = append(diffs[n], took[n-1]-took[max(n-2, 0)])
	}
	b.StopTimer()
	med := make([]time.Duration, len(diffs))
	for i, d := range diffs {
		slices.Sort(d)
		med[i] = d[len(d)/2]
	}
	return med
}

// runCmd runs the command c (a path and its arguments) with stdin and stdout
// on files and stderr on /dev/null, as runProcess does: no pipes, no
// copying goroutines in what is measured.
func runCmd(b *testing.B, stdin, stdout *os.File, c []string) {
	if _, err := stdin.Seek(0, 0); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(c[0], c[1:]...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v", strings.Join(c, " "), err)
	}
}

// inittrace runs path -version with GODEBUG=inittrace=1 and returns the
// sums of its "init" lines' times (ms) and allocations (bytes), and how
// many there were.
func inittrace(b *testing.B, path string) (float64, float64, int) {
	cmd := exec.Command(path, "-version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s -version: %v\n%s", path, err, stderr.String())
	}
	// init internal/bytealg @0.005 ms, 0.011 ms clock, 0 bytes, 0 allocs
	var t, a float64
	n := 0
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "init" {
			continue
		}
		ms, err1 := strconv.ParseFloat(f[4], 64)
		by, err2 := strconv.ParseFloat(f[7], 64)
		if err1 != nil || err2 != nil {
			b.Fatalf("inittrace line %q", sc.Text())
		}
		t, a, n = t+ms, a+by, n+1
	}
	if n == 0 {
		b.Fatalf("%s: no inittrace lines", path)
	}
	return t, a, n
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
