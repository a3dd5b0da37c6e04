package llmcmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/llm/llmtest"
	"github.com/control-plane/cp/internal/llm/openai"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/sdkoverlay"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/ledger"
)

var (
	benchBinOnce sync.Once
	benchBinDir  string
	benchBinErr  error
)

// benchBins builds cp-llm and the bare SDK client (testdata/sdkbare) once,
// once per run.
func benchBins(b *testing.B) string {
	benchBinOnce.Do(func() {
		// One fixed directory per source tree, rebuilt by each run:
		// nothing piles up in the temporary directory, and two trees
		// (git worktrees) measured at once do not overwrite each other's
		// binaries.
		tree, err := filepath.Abs("../..")
		if err != nil {
			benchBinErr = err
			return
		}
		sum := sha256.Sum256([]byte(tree))
		benchBinDir = filepath.Join(os.TempDir(), "cp-llm-bench-"+hex.EncodeToString(sum[:6]))
		if benchBinErr = os.MkdirAll(benchBinDir, 0o755); benchBinErr != nil {
			return
		}
		// Both as `make build` builds (-trimpath, -ldflags '-s -w', the
		// SDKs patched through the overlay; CP_SDK_OVERLAY=off: both
		// unpatched), so a CP_BENCH_BASELINE built that way is paired
		// with a binary built the same way.
		overlay, env, err := sdkoverlay.BuildArgs("../..")
		if err != nil {
			benchBinErr = err
			return
		}
		args := append(append([]string{"build", "-trimpath", "-ldflags", "-s -w"}, overlay...), "-o", benchBinDir+"/", "../../cmd/cp-llm", "./testdata/sdkbare")
		cmd := exec.Command("go", args...)
		cmd.Env = append(env, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			benchBinErr = fmt.Errorf("building: %v\n%s", err, out)
			return
		}
		for _, name := range []string{"cp-llm", "sdkbare"} {
			if benchBinErr = testenv.RewriteExecutable(filepath.Join(benchBinDir, name), filepath.Join(benchBinDir, name)); benchBinErr != nil {
				return
			}
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	return benchBinDir
}

// benchPlane is a plane whose providers.json lists srv as local-openai
// (auth off, so calls run as the plane's owner, raw prompts).
func benchPlane(b *testing.B, srv *llmtest.Server) *testPlane {
	p := newPlane(b)
	p.provide(srv.ProvidersJSON(""))
	return p
}

func runBin(b *testing.B, stdin []byte, env []string, bin string, args ...string) []byte {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s %v: %v\n%s%s", filepath.Base(bin), args, err, out.String(), errb.String())
	}
	return out.Bytes()
}

// BenchmarkGatewayProcessOverSDK is the gateway's cost as one process per
// call: cp-llm (a raw prompt to local-openai, the configuration read, the
// reservation and the evidence each a durable append to HO2's ledger with
// its signed checkpoint) against sdkbare (the same call with the same SDK
// to the same local server, one process), paired in each iteration.
// Reported: the median difference, ms-over-sdk (target: at most 3 ms),
// and of the two started with nothing to do (cp-llm -version, sdkbare -n
// 0), start-ms-over-sdk: the part of it that is the binary's start.
//
// With CP_BENCH_BASELINE=DIR (DIR holding another build's cp-llm, built
// CGO_ENABLED=0 as this one is), each iteration also runs that cp-llm on
// the same plane, the two in alternating order, and reports the median of
// its own difference to sdkbare (baseline-ms-over-sdk) and of this one's
// to it (ms-over-baseline): the same call, the same minutes.
func BenchmarkGatewayProcessOverSDK(b *testing.B) {
	dir := benchBins(b)
	srv := llmtest.New()
	defer srv.Close()
	p := benchPlane(b, srv)
	env := []string{"HOME=" + p.dir, "XDG_CONFIG_HOME=" + filepath.Join(p.dir, "config"), "PATH=" + os.Getenv("PATH")}
	gw := []string{"--root", p.root, "--prompt", "say hi", "--provider", "local-openai", "--max-tokens", "64"}
	base := os.Getenv("CP_BENCH_BASELINE")
	if base != "" {
		// Run from a copy written as this build's binaries are (testenv.RewriteExecutable).
		cp := filepath.Join(dir, "cp-llm-baseline")
		if err := testenv.RewriteExecutable(filepath.Join(base, "cp-llm"), cp); err != nil {
			b.Fatal(err)
		}
		base = cp
		runBin(b, nil, env, base, gw...)
	}
	runBin(b, nil, env, filepath.Join(dir, "cp-llm"), gw...)
	timed := func(bin string, args ...string) time.Duration {
		t0 := time.Now()
		runBin(b, nil, env, bin, args...)
		return time.Since(t0)
	}
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	diffs := make([]time.Duration, 0, b.N)
	var baseDiffs, overBase, starts []time.Duration
	b.ResetTimer()
	for i := range b.N {
		// The two processes started and ended with no call: what the
		// gateway's binary costs before it does anything.
		starts = append(starts, timed(filepath.Join(dir, "cp-llm"), "-version")-timed(filepath.Join(dir, "sdkbare"), "-n", "0"))
		sdk := timed(filepath.Join(dir, "sdkbare"), "--base-url", srv.URL+"/v1")
		var this, that time.Duration
		if base != "" && i%2 == 1 {
			that = timed(base, gw...)
		}
		this = timed(filepath.Join(dir, "cp-llm"), gw...)
		if base != "" && i%2 == 0 {
			that = timed(base, gw...)
		}
		diffs = append(diffs, this-sdk)
		if base != "" {
			baseDiffs, overBase = append(baseDiffs, that-sdk), append(overBase, this-that)
		}
	}
	b.ReportMetric(median(diffs), "ms-over-sdk")
	b.ReportMetric(median(starts), "start-ms-over-sdk")
	if base != "" {
		b.ReportMetric(median(baseDiffs), "baseline-ms-over-sdk")
		b.ReportMetric(median(overBase), "ms-over-baseline")
	}
}

// BenchmarkGatewayStreamOverSDK is the gateway's cost per call in a
// stream of calls: one cp-llm process answering n NDJSON requests (their
// reservations and evidence group-committed) against sdkbare making the
// same n calls in one process. Reported: the difference per call,
// ms-over-sdk/call (target: at most 1 ms).
func BenchmarkGatewayStreamOverSDK(b *testing.B) {
	const n = 1000
	dir := benchBins(b)
	srv := llmtest.New()
	defer srv.Close()
	p := benchPlane(b, srv)
	env := []string{"HOME=" + p.dir, "XDG_CONFIG_HOME=" + filepath.Join(p.dir, "config"), "PATH=" + os.Getenv("PATH")}
	reqs := []byte(strings.Repeat(`{"prompt":"say hi","provider_id":"local-openai","max_tokens":64}`+"\n", n))
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runBin(b, nil, env, filepath.Join(dir, "sdkbare"), "--base-url", srv.URL+"/v1", "-n", fmt.Sprint(n))
		t1 := time.Now()
		out := runBin(b, reqs, env, filepath.Join(dir, "cp-llm"), "--root", p.root)
		total += time.Since(t1) - t1.Sub(t0)
		if got := bytes.Count(out, []byte(`"status":"ok"`)); got != n {
			b.Fatalf("%d answers, want %d", got, n)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N*n), "ms-over-sdk/call")
}

// BenchmarkGatewayInProcessOverProvider is the gateway in-process
// (Gateway.Complete: checks, the reservation's and the evidence's durable
// appends) against the provider's own Complete to the same local server.
func BenchmarkGatewayInProcessOverProvider(b *testing.B) {
	srv := llmtest.New()
	defer srv.Close()
	p := benchPlane(b, srv)
	ctx := context.Background()
	b.Run("provider", func(b *testing.B) {
		pr, err := openai.New(openai.Config{BaseURL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		req := provider.Request{Model: "local-model", Prompt: "say hi", MaxTokens: 64}
		for b.Loop() {
			if _, err := pr.Complete(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gateway", func(b *testing.B) {
		g := &llm.Gateway{Root: p.root, Actor: plane.Actor{Name: "bench", AuthOff: true}, Options: llm.Options{Getenv: os.Getenv}}
		for b.Loop() {
			if _, err := g.Complete(ctx, &llm.Call{Subject: "bench", ProviderID: "local-openai",
				Request: provider.Request{Prompt: "say hi", MaxTokens: 64}}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGatewayWorkOrderHistory is one governed call in-process
// (Gateway.Complete to the local server, under a work order and its
// session) in a work order that has made calls before it: 0, 2,500 and
// 10,000 calls, that is 0, 5,000 and 20,000 LLM_RESERVED and LLM_CALL
// entries of the work order in HO2's ledger (copies of a call the gateway
// made, appended 1,000 at a time) besides one untimed call before them
// (the work order's tally begun) and one after (the history appended
// behind the gateway's back is folded into the tally by the first call
// after it, once, as after an upgrade). A call
// reads of its work order its state (prepare's checkWorkOrder: the index's
// typed-subject keys, its WO_* entries only) and, under the budget lock,
// its budget's sum (its tally, caught up with the last call's entries):
// neither grows with its history (before session 33 both read every
// LLM_* entry of the work order: 3.5 / 173 / 796 ms a call).
func BenchmarkGatewayWorkOrderHistory(b *testing.B) {
	srv := llmtest.New()
	defer srv.Close()
	ctx := context.Background()
	for _, calls := range []int{0, 2_500, 10_000} {
		p := benchPlane(b, srv)
		id, ses := p.wo("--llm-calls", "1000000", "--llm-tokens", "10000000000", "--llm-cost-usd", "100000")
		g := &llm.Gateway{Root: p.root, Actor: plane.Actor{Name: "bench", AuthOff: true}, Options: llm.Options{Getenv: os.Getenv}}
		call := func() *llm.Call {
			return &llm.Call{Subject: "bench", WorkOrderID: id, SessionID: ses, ProviderID: "local-openai",
				Request: provider.Request{Prompt: "say hi", MaxTokens: 64}}
		}
		// One untimed call first: the work order's tally begun (and the
		// plane's llm-created.json), as on any work order's first call.
		if _, err := g.Complete(ctx, call()); err != nil {
			b.Fatal(err)
		}
		if calls > 0 {
			appendHistory(b, p.root, calls-1)
			if _, err := g.Complete(ctx, call()); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("entries=%d", 2*calls), func(b *testing.B) {
			for b.Loop() {
				if _, err := g.Complete(ctx, call()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// appendHistory appends n copies of the last call the gateway made (its
// LLM_RESERVED and LLM_CALL, each copy under a reservation id of its own)
// to HO2's ledger.
func appendHistory(b *testing.B, root string, n int) {
	ctx := context.Background()
	s, _, err := plane.OpenLedger(llm.BudgetLedgerDir(root), plane.ForAppend, plane.Actor{Name: "bench", AuthOff: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var last [2]*ledger.Entry
	if err := s.Find(ctx, ledger.Query{EventTypes: []string{llm.EventReserved, llm.EventCall}}, func(e *ledger.Entry) bool {
		c := *e
		last[0], last[1] = last[1], &c
		return true
	}); err != nil {
		b.Fatal(err)
	}
	if last[0] == nil || last[0].EventType != llm.EventReserved || last[1].EventType != llm.EventCall {
		b.Fatal("no call to copy")
	}
	const batch = 500
	for i := 0; i < n; i += batch {
		ds := make([]ledger.Draft, 0, 2*batch)
		for j := i; j < min(i+batch, n); j++ {
			rid := fmt.Sprintf("RSV-%016x", j+1)
			for _, e := range last {
				meta := make(map[string]any, len(e.Metadata))
				for k, v := range e.Metadata {
					meta[k] = v
				}
				meta["reservation_id"] = rid
				ds = append(ds, ledger.Draft{EventType: e.EventType, SubmissionID: e.SubmissionID, Decision: e.Decision, Reason: e.Reason,
					PromptsUsed: e.PromptsUsed, Metadata: meta})
			}
		}
		if _, err := s.Append(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
}
