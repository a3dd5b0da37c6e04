package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// bigLedgerEntries is the size of the governance ledger of the plane
// BenchmarkTraceFile1M traces a file on (issue 14's target plane).
const bigLedgerEntries = 1_000_000

var (
	bigOnce  sync.Once
	bigPlane string
	bigErr   error
)

// makeBigLedgerPlane copies the gate plane (100 packages of 100 files, all
// installed) and grows its governance ledger to bigLedgerEntries entries
// with cp-ledger append, streaming: group commits through the store, each
// leaving the plane's signed checkpoint, as a busy plane's ledger grows.
// Built once per run, under the benchmarks' temporary directory.
func makeBigLedgerPlane() (string, error) {
	gateOnce.Do(func() { gatePlane, gateErr = makeGatePlane() })
	if gateErr != nil {
		return "", gateErr
	}
	dir, err := os.MkdirTemp(binDir, "trace-")
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "plane")
	if err := copyPlane(gatePlane, root); err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(binDir, "cp-ledger"), "verify", "--root", root).Output()
	if err != nil {
		return "", fmt.Errorf("cp-ledger verify: %v\n%s", err, out)
	}
	var v struct {
		Result struct {
			Entries int `json:"entries"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", err
	}
	have := v.Result.Entries
	in := filepath.Join(dir, "requests.ndjson")
	if err := os.WriteFile(in, requests(bigLedgerEntries-have), 0o644); err != nil {
		return "", err
	}
	f, err := os.Open(in)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cmd := exec.Command(filepath.Join(binDir, "cp-ledger"), "append", "--root", root)
	cmd.Stdin, cmd.Stdout = f, nil
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("growing the ledger: %v\n%s", err, stderr.Bytes())
	}
	os.Remove(in)
	return root, nil
}

// timeTrace runs `cp-trace args... --root plane` once per iteration,
// paired with a bare process run just before it, checks the answer with
// check, and reports ms/op, the median of the paired differences as
// ms-over-bare (the machine is shared: pairing keeps its drift out) and the
// process's CPU time (user + system) as cpu-ms/op, which a loaded machine
// inflates least.
func timeTrace(b *testing.B, root string, check func(result []byte) error, args ...string) {
	argv := append(slices.Clone(args), "--root", root)
	stdin, stdout := tempFiles(b, nil)
	diffs := make([]time.Duration, 0, b.N)
	var total, cpu time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		runProcess(b, stdin, stdout, "bare")
		t1 := time.Now()
		var out, errb bytes.Buffer
		cmd := exec.Command(filepath.Join(binDir, "cp-trace"), argv...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("cp-trace %v: %v\n%s%s", argv, err, out.Bytes(), errb.Bytes())
		}
		d := time.Since(t1)
		total += d
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		diffs = append(diffs, d-t1.Sub(t0))
		b.StopTimer()
		var env struct {
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(out.Bytes(), &env); err != nil || env.Status != "ok" {
			b.Fatalf("cp-trace %v: %v\n%s", argv, err, out.Bytes())
		}
		if err := check(env.Result); err != nil {
			b.Fatalf("cp-trace %v: %v", argv, err)
		}
		b.StartTimer()
	}
	slices.Sort(diffs)
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/op")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(diffs[len(diffs)/2].Microseconds())/1000, "ms-over-bare")
}

// BenchmarkTraceFile1M is `cp-trace file` on a plane whose governance
// ledger holds 1,000,000 entries: the owner from the ownership registry,
// the file hashed, its package's entries found through the ledger's index,
// two inclusion proofs against the latest signed checkpoint. Target: < 20 ms.
func BenchmarkTraceFile1M(b *testing.B) {
	bigOnce.Do(func() { bigPlane, bigErr = makeBigLedgerPlane() })
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	timeTrace(b, bigPlane, func(r []byte) error {
		var p struct {
			State    string `json:"state"`
			History  []any  `json:"history"`
			Evidence struct {
				LatestProof struct {
					TreeSize int64 `json:"tree_size"`
				} `json:"latest_inclusion"`
			} `json:"provenance"`
		}
		if err := json.Unmarshal(r, &p); err != nil {
			return err
		}
		if p.State != "intact" || len(p.History) != 1 || p.Evidence.LatestProof.TreeSize < bigLedgerEntries {
			return fmt.Errorf("state %s, %d entries, proved in a tree of %d", p.State, len(p.History), p.Evidence.LatestProof.TreeSize)
		}
		return nil
	}, "file", "lib/gate/p057/m3/f038.go")
}

// BenchmarkTraceInventory100 is `cp-trace inventory` of 100 installed
// packages (the gate plane): 100 manifests read, 100 install entries found
// through the index. Target: < 50 ms.
func BenchmarkTraceInventory100(b *testing.B) {
	gateOnce.Do(func() { gatePlane, gateErr = makeGatePlane() })
	if gateErr != nil {
		b.Fatal(gateErr)
	}
	timeTrace(b, gatePlane, func(r []byte) error {
		var inv struct {
			Tiers []struct {
				Packages []struct {
					InstalledSeq *int64 `json:"installed_seq"`
				} `json:"packages"`
			} `json:"tiers"`
		}
		if err := json.Unmarshal(r, &inv); err != nil {
			return err
		}
		if n := len(inv.Tiers[0].Packages); n != gatePackages+1 || inv.Tiers[0].Packages[0].InstalledSeq == nil {
			return fmt.Errorf("%d packages in HO3, want %d", n, gatePackages+1)
		}
		return nil
	}, "inventory", "--plane", "ho3")
}

// BenchmarkTraceAgentContext is `cp-trace agent-context` on the gate plane
// (100 packages, three tiers' ledger heads). Target: < 20 ms.
func BenchmarkTraceAgentContext(b *testing.B) {
	gateOnce.Do(func() { gatePlane, gateErr = makeGatePlane() })
	if gateErr != nil {
		b.Fatal(gateErr)
	}
	timeTrace(b, gatePlane, func(r []byte) error {
		if !bytes.Contains(r, []byte(`"PKG-GATE-099"`)) {
			return fmt.Errorf("no PKG-GATE-099 in the context")
		}
		return nil
	}, "agent-context")
}

// BenchmarkTraceAgentContext1M is agent-context on the plane with the
// 1,000,000-entry ledger: its heads cost O(log n) reads.
func BenchmarkTraceAgentContext1M(b *testing.B) {
	bigOnce.Do(func() { bigPlane, bigErr = makeBigLedgerPlane() })
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	timeTrace(b, bigPlane, func(r []byte) error { return nil }, "agent-context")
}

// BenchmarkTraceExplain1M is `cp-trace explain ID` of every id kind on the
// plane with the 1,000,000-entry governance ledger: each one's entries are
// found through the ledgers' indexes (by subject; a ledger entry by its
// id, one early in the ledger and its last), never by a scan. A work order
// is created on the plane first (its HO3 and HO2 entries). A prompt pack
// is left out: the gate plane registers none, so its explain is
// ID_NOT_FOUND from prompts_registry.csv without a ledger read. Target:
// each under 20 ms, like file.
func BenchmarkTraceExplain1M(b *testing.B) {
	bigOnce.Do(func() { bigPlane, bigErr = makeBigLedgerPlane() })
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	explainOnce.Do(func() { explainIDs, explainErr = makeExplainIDs(bigPlane) })
	if explainErr != nil {
		b.Fatal(explainErr)
	}
	for _, id := range explainIDs {
		b.Run(id.kind, func(b *testing.B) {
			timeTrace(b, bigPlane, func(r []byte) error {
				var x struct {
					Kind    string `json:"kind"`
					Entries []any  `json:"entries"`
				}
				if err := json.Unmarshal(r, &x); err != nil {
					return err
				}
				if x.Kind != id.want || len(x.Entries) == 0 {
					return fmt.Errorf("kind %s, %d entries", x.Kind, len(x.Entries))
				}
				return nil
			}, "explain", id.id)
		})
	}
}

var (
	explainOnce sync.Once
	explainIDs  []explainID
	explainErr  error
)

type explainID struct{ kind, id, want string }

// makeExplainIDs creates a work order on the plane at root and returns an
// id of every kind explain takes (but a prompt pack's).
func makeExplainIDs(root string) ([]explainID, error) {
	run := func(args ...string) (map[string]any, error) {
		out, err := exec.Command(filepath.Join(binDir, args[0]), append(args[1:], "--root", root)...).Output()
		if err != nil {
			return nil, fmt.Errorf("%v: %v\n%s", args, err, out)
		}
		var m map[string]any
		line, _, _ := bytes.Cut(out, []byte("\n"))
		return m, json.Unmarshal(line, &m)
	}
	wo, err := run("cp-wo", "create", "--type", "investigation", "--title", "bench", "--paths", "lib/**", "--turns", "3")
	if err != nil {
		return nil, err
	}
	woID, _ := wo["result"].(map[string]any)["wo_id"].(string)
	ck, err := run("cp-ledger", "show", "--event-type", "CHECKPOINT_CREATED")
	if err != nil {
		return nil, err
	}
	early, err := run("cp-ledger", "show", "--seq", "1000")
	if err != nil {
		return nil, err
	}
	st, err := run("cp-ledger", "verify")
	if err != nil {
		return nil, err
	}
	n, _ := st["result"].(map[string]any)["entries"].(float64)
	last, err := run("cp-ledger", "show", "--seq", fmt.Sprint(int64(n)-1))
	if err != nil {
		return nil, err
	}
	return []explainID{
		{"framework", "FMWK-GATE", "framework"},
		{"spec", "SPEC-GATE", "spec"},
		{"package", "PKG-GATE-057", "package"},
		{"work_order", woID, "work_order"},
		{"checkpoint", ck["submission_id"].(string), "checkpoint"},
		{"entry_early", early["id"].(string), "ledger_entry"},
		{"entry_last", last["id"].(string), "ledger_entry"},
	}, nil
}
