package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

const (
	gatePackages = 100
	gateFiles    = 100 // per package: 10,000 owned files in all
)

var (
	gateOnce  sync.Once
	gatePlane string
	gateErr   error
)

// makeGatePlane builds, with the real binaries, a plane with 100 signed
// packages of 100 files each (1–8 KiB) installed: 10,000 owned files.
func makeGatePlane() (string, error) {
	dir, err := os.MkdirTemp(binDir, "gate-")
	if err != nil {
		return "", err
	}
	os.WriteFile(filepath.Join(dir, "fw.md"), []byte("---\nframework_id: FMWK-GATE\ntitle: Gate bench\nversion: 1.0.0\n---\n- MUST pass the gates.\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "spec"), 0o755)
	os.WriteFile(filepath.Join(dir, "spec", "manifest.json"), []byte(`{"spec_id":"SPEC-GATE","framework_id":"FMWK-GATE","assets":["lib/**"]}`), 0o644)
	for _, s := range [][]string{
		{"cp-pkg", "keygen", "--name", "bench", "--out", "."},
		{"cp-install", "bootstrap", "--root", "plane", "--trust-key", "bench.pub"},
		{"cp-pkg", "register-framework", "FMWK-GATE", "--src", "fw.md", "--root", "plane"},
		{"cp-pkg", "register-spec", "SPEC-GATE", "--src", "spec", "--root", "plane"},
	} {
		if err := run(dir, s[0], s[1:]...); err != nil {
			return "", err
		}
	}
	for k := range gatePackages {
		id := fmt.Sprintf("PKG-GATE-%03d", k)
		m := fmt.Sprintf(`{"schema_version":"1.2","package_id":%q,"version":"1.0.0","package_type":"standard",`+
			`"spec_id":"SPEC-GATE","framework_id":"FMWK-GATE","plane_id":"ho3","dependencies":[],"assets":[]}`, id)
		files := map[string][]byte{}
		for i := range gateFiles {
			files[fmt.Sprintf("lib/gate/p%03d/m%d/f%03d.go", k, i%5, i)] = fileContent(k*gateFiles+i, 3)
		}
		src := filepath.Join("src", id)
		if err := writeTree(filepath.Join(dir, src), []byte(m), files); err != nil {
			return "", err
		}
		archive := filepath.Join("dist", id+".tar.gz")
		for _, s := range [][]string{
			{"cp-pkg", "stage", id, "--src", src, "--declare", "--out", "dist", "--root", "plane"},
			{"cp-pkg", "sign", "--archive", archive, "--key", "bench.key"},
			{"cp-install", "--root", "plane", "--archive", archive},
		} {
			if err := run(dir, s[0], s[1:]...); err != nil {
				return "", err
			}
		}
	}
	return filepath.Join(dir, "plane"), nil
}

// timeGate runs `cp-gate --root PLANE args...` once per iteration and
// checks that every gate passed.
func timeGate(b *testing.B, args ...string) {
	gateOnce.Do(func() { gatePlane, gateErr = makeGatePlane() })
	if gateErr != nil {
		b.Fatal(gateErr)
	}
	argv := append(args, "--root", gatePlane)
	b.ResetTimer()
	for range b.N {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(filepath.Join(binDir, "cp-gate"), argv...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("cp-gate %v: %v\n%s%s", argv, err, stdout.Bytes(), stderr.Bytes())
		}
		b.StopTimer()
		var env struct {
			Result struct {
				AllPassed bool `json:"all_passed"`
				Results   []struct {
					Gate    string         `json:"gate"`
					Details map[string]any `json:"details"`
				} `json:"results"`
			} `json:"result"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &env); err != nil || !env.Result.AllPassed {
			b.Fatalf("cp-gate %v: all_passed false (%v)\n%s", argv, err, stdout.Bytes())
		}
		for _, r := range env.Result.Results {
			if r.Gate == "G0B" && r.Details["owned"].(float64) < gatePackages*gateFiles {
				b.Fatalf("G0B judged %v owned files, want at least %d", r.Details["owned"], gatePackages*gateFiles)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
}

// BenchmarkGateCheck100x100 is `cp-gate check --all` on a plane with 100
// installed packages and 10,000 owned files: every file hashed once, in
// parallel (G0B), 100 manifests and receipts (G0A, G1), 100 signatures
// (G5), every ledger (G6). Target: < 300 ms.
func BenchmarkGateCheck100x100(b *testing.B) { timeGate(b, "check", "--all") }

// BenchmarkGateIntegrity100x100 is `cp-gate integrity` on the same plane:
// G0B, G6 and RECEIPTS, the sweep meant to run before every agent turn.
func BenchmarkGateIntegrity100x100(b *testing.B) { timeGate(b, "integrity") }
