package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/routecmd"
	"github.com/control-plane/cp/pkg/keys"
)

// routePolicy is a policy of the size a team writes: five routes, two
// deny rules, a limit, a classifier (never asked: every request below
// matches a rule).
const routePolicy = `{
  "routes": [
    {"name": "deploy", "when": ".intent == \"deploy\" and (.variables.service // \"\") != \"\"", "handler": "default", "mode": "llm_assisted", "prompt_pack_id": "PRM-DEPLOY"},
    {"name": "status", "when": ".intent == \"status\"", "handler": "default", "mode": "tools_first"},
    {"name": "billing", "when": "(.tags // []) | index(\"billing\") != null", "handler": "default", "mode": "tools_first", "prompt_pack_id": "PRM-BILL"},
    {"name": "questions", "when": "(.text // \"\") | endswith(\"?\")", "handler": "default", "mode": "tools_first"},
    {"name": "big", "when": "(.variables.n // 0) > 1000000000", "handler": "default", "mode": "tools_first"}
  ],
  "deny": [
    {"when": ".user == \"mallory\"", "reason": "blocked"},
    {"when": ".intent == \"drop-tables\"", "reason": "destructive"}
  ],
  "limits": {"llm_calls_per_session": 1000000},
  "classifier": {"prompt_pack_id": "PRM-ROUTER"},
  "default_route": {"handler": "default", "mode": "tools_first"}
}
`

// routeRequests returns n requests that exercise every kind of decision but
// a denial (which would end the stream).
func routeRequests(n int) []byte {
	var b bytes.Buffer
	intents := []string{"deploy", "status", "chat", "billing"}
	for i := range n {
		switch i % 4 {
		case 3:
			fmt.Fprintf(&b, `{"intent":"chat","tags":["billing"],"user":"u%d","variables":{"n":%d}}`+"\n", i%50, i)
		default:
			fmt.Fprintf(&b, `{"intent":%q,"user":"u%d","text":"where is it?","variables":{"service":"api","n":%d}}`+"\n", intents[i%4], i%50, i)
		}
	}
	return b.Bytes()
}

// routePlane bootstraps a plane and installs routePolicy in a config
// package, with the binaries, as an operator would.
func routePlane(b *testing.B) string {
	dir := b.TempDir()
	root := filepath.Join(dir, "plane")
	run := func(name string, args ...string) {
		b.Helper()
		if out, err := exec.Command(filepath.Join(binDir, name), args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("cp-pkg", "keygen", "--name", "ops", "--out", dir)
	run("cp-install", "bootstrap", "--root", root, "--trust-key", filepath.Join(dir, "ops.pub"))
	conf := filepath.Join(dir, "opconf")
	run("cp-pkg", "init-config", "PKG-CONFIG-001", "--output", conf)
	p := filepath.Join(conf, "config", "router_policy.json")
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte(routePolicy), 0o644); err != nil {
		b.Fatal(err)
	}
	run("cp-pkg", "stage", "PKG-CONFIG-001", "--root", root, "--src", conf, "--out", filepath.Join(dir, "v1"))
	arch := filepath.Join(dir, "v1", "PKG-CONFIG-001.tar.gz")
	run("cp-pkg", "sign", "--archive", arch, "--key", filepath.Join(dir, "ops.key"))
	run("cp-install", "install", "--root", root, "--archive", arch)
	return root
}

// BenchmarkStreamRouteProcess runs `cp-route --root plane --session S <
// requests.ndjson > decisions.ndjson` with 200,000 requests: each decided
// by the policy and recorded as a ROUTE_DECISION in HO3's ledger (group
// commits, each leaving the plane's signed checkpoint), the session's
// limit counted. The same run measures the plane append stream of the same
// number of entries (BenchmarkStreamAppendPlaneProcess's work) as its
// baseline. With CP_BENCH_BASELINE (a directory holding another build's
// cp-route), that build routes the same requests in the same run, each
// process in a session of its own (a session's first read counts what the
// ledger holds of it): baseline-decisions/s.
func BenchmarkStreamRouteProcess(b *testing.B) {
	const n = 200_000
	root := routePlane(b)
	dir := b.TempDir()
	inPath := filepath.Join(dir, "requests.ndjson")
	if err := os.WriteFile(inPath, routeRequests(n), 0o644); err != nil {
		b.Fatal(err)
	}
	appPath := filepath.Join(dir, "appends.ndjson")
	if err := os.WriteFile(appPath, requests(n), 0o644); err != nil {
		b.Fatal(err)
	}
	cpu := map[string]time.Duration{} // by binary
	base := os.Getenv("CP_BENCH_BASELINE")
	stream := func(in string, name string, args ...string) time.Duration {
		f, err := os.Open(in)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		out, err := os.Create(filepath.Join(dir, "out.ndjson"))
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		bin := filepath.Join(binDir, name)
		if name == "baseline/cp-route" {
			bin = filepath.Join(base, "cp-route")
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, out, os.Stderr
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		cpu[name] += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		acks, _ := os.ReadFile(filepath.Join(dir, "out.ndjson"))
		if got := bytes.Count(acks, []byte(`"status":"ok"`)); got != n {
			b.Fatalf("%s: %d answers, want %d", name, got, n)
		}
		return d
	}
	var route, app, baseRoute time.Duration
	b.ResetTimer()
	// The two builds take turns going first, from one iteration and one
	// run (-count) to the next: each stream grows the plane's ledgers
	// (and now and then regrows an index) for the next, and with one
	// going first every time the same binary measured up to 8% slower on
	// one side than on the other (README, cp-route's session 29).
	for i := range b.N {
		streamTurns++
		baseFirst := base != "" && streamTurns%2 == 0
		if baseFirst {
			baseRoute += stream(inPath, "baseline/cp-route", "--root", root, "--session", fmt.Sprintf("SES-20261206-0a1b%04x", 2*i+1))
		}
		route += stream(inPath, "cp-route", "--root", root, "--session", fmt.Sprintf("SES-20261206-0a1b%04x", 2*i))
		app += stream(appPath, "cp-ledger", "append", "--root", root, "--plane", "ho2")
		if base != "" && !baseFirst {
			baseRoute += stream(inPath, "baseline/cp-route", "--root", root, "--session", fmt.Sprintf("SES-20261206-0a1b%04x", 2*i+1))
		}
	}
	b.ReportMetric(float64(b.N*n)/route.Seconds(), "decisions/s")
	if base != "" {
		b.ReportMetric(float64(b.N*n)/baseRoute.Seconds(), "baseline-decisions/s")
		b.ReportMetric(float64(cpu["baseline/cp-route"].Microseconds())/float64(b.N*n), "baseline-cpu-us/decision")
	}
	b.ReportMetric(float64(b.N*n)/app.Seconds(), "baseline-appends/s")
	// CPU time per entry (user + system, both cores): what a loaded
	// machine distorts least.
	b.ReportMetric(float64(cpu["cp-route"].Microseconds())/float64(b.N*n), "cpu-us/decision")
	b.ReportMetric(float64(cpu["cp-ledger"].Microseconds())/float64(b.N*n), "baseline-cpu-us/append")
}

// streamTurns counts BenchmarkStreamRouteProcess's iterations over its
// runs: whose stream goes first.
var streamTurns int

// BenchmarkStreamRouteInProcess is the same stream through routecmd.Run in
// this process, for profiling (-cpuprofile), each run in a session of its
// own, as the process benchmark's (a session's first read counts what the
// ledger holds of it: a profile of one session's later runs is mostly
// that read).
func BenchmarkStreamRouteInProcess(b *testing.B) {
	const n = 100_000
	root := routePlane(b)
	in := routeRequests(n)
	b.ResetTimer()
	for i := range b.N {
		var out countWriter
		if code := routecmd.Run(context.Background(), []string{"--root", root, "--session", fmt.Sprintf("SES-20261206-0a1b%04x", i)}, bytes.NewReader(in), &out, io.Discard); code != 0 {
			b.Fatalf("exit %d", code)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkSingleRouteOverBare is one cp-route process deciding one
// request (the policy loaded, compiled and checked against the installed
// handlers, the decision recorded in HO3's 10,000-entry ledger with the
// plane's signed checkpoint), minus a bare Go process reading stdin, back
// to back: the median of b.N pairs. With CP_BENCH_BASELINE (a directory
// holding another build's cp-route), that build's process runs in each
// round too, after the same bare process: baseline-ms-over-bare. Each
// round also runs the machine's floor for such a process
// (testdata/appendfloor: one line appended and fsynced, a signed
// checkpoint written beside it, nothing else) after a bare process of its
// own: floor-ms-over-bare, what no implementation in Go goes below here.
func BenchmarkSingleRouteOverBare(b *testing.B) {
	root := routePlane(b)
	stdin, stdout := tempFiles(b, routeRequests(10_000))
	runProcess(b, stdin, stdout, "cp-route", "--root", root)
	stdin, stdout = tempFiles(b, routeRequests(1))
	floorDir := b.TempDir()
	skey, vkey, err := keys.Generate("floor")
	if err != nil {
		b.Fatal(err)
	}
	skeyFile, vkeyFile := filepath.Join(floorDir, "floor.key"), filepath.Join(floorDir, "floor.pub")
	if os.WriteFile(skeyFile, []byte(skey), 0o600) != nil || os.WriteFile(vkeyFile, []byte(vkey), 0o644) != nil {
		b.Fatal("writing the floor's keys")
	}
	base := os.Getenv("CP_BENCH_BASELINE")
	diffs := make([]time.Duration, 0, b.N)
	cpus := make([]time.Duration, 0, b.N)
	floors := make([]time.Duration, 0, b.N)
	var baseDiffs, baseCPUs []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		bare := cpuProcess(b, stdin, stdout, "bare")
		t1 := time.Now()
		route := cpuProcess(b, stdin, stdout, "cp-route", "--root", root)
		diffs = append(diffs, time.Since(t1)-t1.Sub(t0))
		cpus = append(cpus, route-bare)
		// The floor after a bare process of its own, as cp-route's: run
		// right after cp-route's, its fsyncs would wait for the journal
		// commit of cp-route's.
		t2 := time.Now()
		cpuProcess(b, stdin, stdout, "bare")
		t3 := time.Now()
		cpuProcess(b, stdin, stdout, "appendfloor", floorDir, skeyFile, vkeyFile)
		floors = append(floors, time.Since(t3)-t3.Sub(t2))
		if base != "" {
			t2 := time.Now()
			other := cpuProcess(b, stdin, stdout, filepath.Join(base, "cp-route"), "--root", root)
			baseDiffs = append(baseDiffs, time.Since(t2)-t1.Sub(t0))
			baseCPUs = append(baseCPUs, other-bare)
		}
	}
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(diffs), "ms-over-bare")
	// CPU time (user + system) is what a loaded machine distorts least.
	b.ReportMetric(median(cpus), "cpu-ms-over-bare")
	b.ReportMetric(median(floors), "floor-ms-over-bare")
	if base != "" {
		b.ReportMetric(median(baseDiffs), "baseline-ms-over-bare")
		b.ReportMetric(median(baseCPUs), "baseline-cpu-ms-over-bare")
	}
}

// cpuProcess is runProcess, returning the process's CPU time (user +
// system); name is a binary of binDir, or an absolute path.
func cpuProcess(b *testing.B, stdin, stdout *os.File, name string, args ...string) time.Duration {
	if _, err := stdin.Seek(0, 0); err != nil {
		b.Fatal(err)
	}
	bin := name
	if !filepath.IsAbs(name) {
		bin = filepath.Join(binDir, name)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkSingleRouteLongSession is one cp-route process deciding one
// request in a session that holds 20,000 decisions already, minus the
// same in a session of its own (a new one each round), back to back: the
// median of b.N pairs, ms-over-new-session. A process reads the session's
// count from its newest decision, so the two cost the same; when each
// process summed the session's decisions, the first took 317 ms against
// 13 (README, cp-route's limits). With CP_BENCH_BASELINE, another build's
// cp-route in the same long session: baseline-ms-over-new-session.
func BenchmarkSingleRouteLongSession(b *testing.B) {
	const long = "SES-20261207-10001000"
	root := routePlane(b)
	stdin, stdout := tempFiles(b, routeRequests(20_000))
	runProcess(b, stdin, stdout, "cp-route", "--root", root, "--session", long)
	stdin, stdout = tempFiles(b, routeRequests(1))
	base := os.Getenv("CP_BENCH_BASELINE")
	var diffs, baseDiffs []time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		cpuProcess(b, stdin, stdout, "cp-route", "--root", root, "--session", fmt.Sprintf("SES-20261207-2000%04x", i))
		t1 := time.Now()
		cpuProcess(b, stdin, stdout, "cp-route", "--root", root, "--session", long)
		diffs = append(diffs, time.Since(t1)-t1.Sub(t0))
		if base != "" {
			t2 := time.Now()
			cpuProcess(b, stdin, stdout, filepath.Join(base, "cp-route"), "--root", root, "--session", long)
			baseDiffs = append(baseDiffs, time.Since(t2)-t1.Sub(t0))
		}
	}
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	b.ReportMetric(median(diffs), "ms-over-new-session")
	if base != "" {
		b.ReportMetric(median(baseDiffs), "baseline-ms-over-new-session")
	}
}
