package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/control-plane/cp/internal/plane"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// installPlanes holds what the cp-install benchmarks start from, all under
// one directory inside binDir (which TestMain removes):
//
//   - base: a bootstrapped plane (trusting the key bench.pub) with the
//     framework FMWK-INST and the spec SPEC-INST registered;
//   - v1, v2: PKG-INST 0.1.0 and 0.2.0, staged and signed with bench.key.
//     v1 is 2,500 files of 1–8 KiB (2,250 under lib/, 250 under config/);
//     v2 changes the content of 1,200 of them, keeps 1,200, drops 100 and
//     adds 100;
//   - atV1: base with v1 installed and then checkpointed (ckptV1);
//   - atV2: atV1 with v2 installed over it.
//
// Each timed iteration runs against a fresh copy of one of these planes
// (cp -a: modes kept), made and synced to disk outside the timer.
type installPlanes struct {
	dir              string
	base, atV1, atV2 string
	v1, v2           string // the signed archives
	ckptV1           string // VER-... taken right after v1 was installed
}

const (
	installFiles   = 2500
	installRemoved = 100 // v2 drops i%25 == 0
	installAdded   = 100
	installChanged = 1200 // odd i that v2 keeps
)

var (
	installOnce sync.Once
	installFix  installPlanes
	installErr  error
)

// installOutput runs name in dir and returns its stdout, or an error with
// everything it wrote.
func installOutput(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %v: %v\n%s%s", name, args, err, out, stderr.Bytes())
	}
	return out, nil
}

// copyPlane copies the plane src to dst (which must not exist), keeping
// modes, moves the plane's key binding to the copy (the keys serve one
// plane: plane.KeyRoot; the copy is the one the benchmark works on next),
// and flushes everything to disk so that the write-back of the copy does
// not land on the measured process.
func copyPlane(src, dst string) error {
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
	t, err := plane.ReadTier(dst)
	if err != nil {
		return err
	}
	if err := plane.BindRoot(t.PlaneName, dst); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// words are what the package files are made of: text, so that the archive
// compresses about as source and configuration do.
var words = []string{"func", "return", "if", "err", "nil", "package", "import", "type", "struct", "string",
	"int", "for", "range", "var", "const", "map", "true", "false", "config", "value", "name", "path",
	"install", "plane", "ledger", "gate", "manifest", "receipt", "version", "checkpoint", "{", "}", "(", ")", "=", ":="}

// fileContent returns the bytes of file i: 1–8 KiB, different for each
// (i, variant).
func fileContent(i, variant int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), uint64(variant)))
	size := 1024 + r.IntN(7*1024+1)
	b := make([]byte, 0, size+16)
	b = fmt.Appendf(b, "// file %d variant %d\n", i, variant)
	for len(b) < size {
		b = append(b, words[r.IntN(len(words))]...)
		if r.IntN(8) == 0 {
			b = append(b, '\n')
		} else {
			b = append(b, ' ')
		}
	}
	return b[:size]
}

// filePath is the install path of file i: one in ten under config/.
func filePath(i int) string {
	if i%10 == 0 {
		return fmt.Sprintf("config/svc%02d/f%04d.json", i%20, i)
	}
	return fmt.Sprintf("lib/mod%02d/pkg%d/f%04d.go", i%30, i%7, i)
}

// writeTree writes a package source tree: manifest (the one cp-pkg init
// wrote, at the given version) and files.
func writeTree(dir string, manifest []byte, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), manifest, 0o644); err != nil {
		return err
	}
	for rel, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func setupInstall(b *testing.B) installPlanes {
	installOnce.Do(func() { installFix, installErr = makeInstallPlanes() })
	if installErr != nil {
		b.Fatal(installErr)
	}
	return installFix
}

func makeInstallPlanes() (installPlanes, error) {
	dir, err := os.MkdirTemp(binDir, "install-")
	if err != nil {
		return installPlanes{}, err
	}
	p := installPlanes{dir: dir, base: filepath.Join(dir, "base"), atV1: filepath.Join(dir, "at-v1"), atV2: filepath.Join(dir, "at-v2"),
		v1: filepath.Join(dir, "dist1", "PKG-INST.tar.gz"), v2: filepath.Join(dir, "dist2", "PKG-INST.tar.gz")}
	os.WriteFile(filepath.Join(dir, "fw.md"), []byte("---\nframework_id: FMWK-INST\ntitle: Install bench\nversion: 1.0.0\n---\n- MUST install fast.\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "spec"), 0o755)
	os.WriteFile(filepath.Join(dir, "spec", "manifest.json"), []byte(`{"spec_id":"SPEC-INST","framework_id":"FMWK-INST","assets":["lib/**","config/**"]}`), 0o644)
	steps := [][]string{
		{"cp-pkg", "keygen", "--name", "bench", "--out", "."},
		{"cp-install", "bootstrap", "--root", "base", "--trust-key", "bench.pub"},
		{"cp-pkg", "register-framework", "FMWK-INST", "--src", "fw.md", "--root", "base"},
		{"cp-pkg", "register-spec", "SPEC-INST", "--src", "spec", "--root", "base"},
		{"cp-pkg", "init", "PKG-INST", "--spec", "SPEC-INST", "--output", "init", "--root", "base"},
	}
	for _, s := range steps {
		if err := run(dir, s[0], s[1:]...); err != nil {
			return p, err
		}
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "init", "manifest.json"))
	if err != nil {
		return p, err
	}
	if !bytes.Contains(manifest, []byte(`"version": "0.1.0"`)) {
		return p, fmt.Errorf("cp-pkg init wrote no version 0.1.0:\n%s", manifest)
	}
	v1, v2 := map[string][]byte{}, map[string][]byte{}
	for i := range installFiles {
		v1[filePath(i)] = fileContent(i, 1)
		switch {
		case i%25 == 0: // dropped by v2
		case i%2 == 1:
			v2[filePath(i)] = fileContent(i, 2)
		default:
			v2[filePath(i)] = v1[filePath(i)]
		}
	}
	for i := range installAdded {
		v2[fmt.Sprintf("lib/added/pkg%d/n%03d.go", i%4, i)] = fileContent(installFiles+i, 2)
	}
	if err := writeTree(filepath.Join(dir, "v1"), manifest, v1); err != nil {
		return p, err
	}
	if err := writeTree(filepath.Join(dir, "v2"), bytes.Replace(manifest, []byte(`"version": "0.1.0"`), []byte(`"version": "0.2.0"`), 1), v2); err != nil {
		return p, err
	}
	steps = [][]string{
		{"cp-pkg", "stage", "PKG-INST", "--src", "v1", "--declare", "--out", "dist1", "--root", "base"},
		{"cp-pkg", "sign", "--archive", "dist1/PKG-INST.tar.gz", "--key", "bench.key"},
		{"cp-pkg", "stage", "PKG-INST", "--src", "v2", "--declare", "--out", "dist2", "--root", "base"},
		{"cp-pkg", "sign", "--archive", "dist2/PKG-INST.tar.gz", "--key", "bench.key"},
	}
	for _, s := range steps {
		if err := run(dir, s[0], s[1:]...); err != nil {
			return p, err
		}
	}
	if err := copyPlane(p.base, p.atV1); err != nil {
		return p, err
	}
	if err := run(dir, "cp-install", "--root", p.atV1, "--archive", p.v1); err != nil {
		return p, err
	}
	out, err := installOutput(dir, "cp-install", "checkpoint", "--root", p.atV1, "--label", "v1 installed")
	if err != nil {
		return p, err
	}
	var ck struct {
		Result struct {
			VersionID string `json:"version_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &ck); err != nil || ck.Result.VersionID == "" {
		return p, fmt.Errorf("checkpoint: no version_id (%v):\n%s", err, out)
	}
	p.ckptV1 = ck.Result.VersionID
	if err := copyPlane(p.atV1, p.atV2); err != nil {
		return p, err
	}
	return p, run(dir, "cp-install", "--root", p.atV2, "--archive", p.v2)
}

// timeInstallCmd runs `cp-install [verb] --root COPY args...`, one process
// per iteration against a fresh copy of the plane from, timing only the
// process, and checks that it exits 0 with status ok; check then looks at
// the result it wrote. It reports ms/op. (The verb comes first: cp-install
// takes the verb only as its first argument.)
func timeInstallCmd(b *testing.B, p installPlanes, from string, check func(result []byte) error, verb string, args ...string) {
	outPath := filepath.Join(p.dir, "out.json")
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		// Each copy is kept until the end (TestMain removes binDir): on ext4
		// without a journal, every file created within ~30 s of many
		// deletions pays for skipping the recently freed inodes, and the
		// measured process creates thousands.
		tmp, err := os.MkdirTemp(p.dir, "work-")
		if err != nil {
			b.Fatal(err)
		}
		work := filepath.Join(tmp, "plane")
		if err := copyPlane(from, work); err != nil {
			b.Fatal(err)
		}
		out, err := os.Create(outPath)
		if err != nil {
			b.Fatal(err)
		}
		var stderr bytes.Buffer
		argv := append([]string{"--root", work}, args...)
		if verb != "" {
			argv = append([]string{verb}, argv...)
		}
		cmd := exec.Command(filepath.Join(binDir, "cp-install"), argv...)
		cmd.Dir, cmd.Stdout, cmd.Stderr = p.dir, out, &stderr
		b.StartTimer()
		err = cmd.Run()
		b.StopTimer()
		out.Close()
		envelope, _ := os.ReadFile(outPath)
		if err != nil {
			b.Fatalf("cp-install %v: %v\n%s%s", argv, err, envelope, stderr.Bytes())
		}
		var env struct {
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(envelope, &env); err != nil || env.Status != "ok" {
			b.Fatalf("cp-install %v: status %q (%v)\n%s", argv, env.Status, err, envelope)
		}
		if err := check(env.Result); err != nil {
			b.Fatalf("cp-install %v: %v", argv, err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
}

// installCounts is the part of an install result the benchmarks check.
type installCounts struct {
	Action    string   `json:"action"`
	Added     []string `json:"added"`
	Replaced  []string `json:"replaced"`
	Removed   []string `json:"removed"`
	Unchanged int      `json:"unchanged"`
}

func checkInstall(action string, added, replaced, removed, unchanged int) func([]byte) error {
	return func(result []byte) error {
		var c installCounts
		if err := json.Unmarshal(result, &c); err != nil {
			return err
		}
		if c.Action != action || len(c.Added) != added || len(c.Replaced) != replaced || len(c.Removed) != removed || c.Unchanged != unchanged {
			return fmt.Errorf("%s: %d added, %d replaced, %d removed, %d unchanged; want %s: %d, %d, %d, %d",
				c.Action, len(c.Added), len(c.Replaced), len(c.Removed), c.Unchanged, action, added, replaced, removed, unchanged)
		}
		return nil
	}
}

// BenchmarkInstall2500 is one `cp-install --root P --archive A` process
// installing a signed package of 2,500 files (1–8 KiB, 11 MB) into a plane
// that does not have it: extraction, gates, the automatic checkpoint, the
// journaled apply and the ledger entries. Target: < 1 s.
func BenchmarkInstall2500(b *testing.B) {
	p := setupInstall(b)
	timeInstallCmd(b, p, p.base, checkInstall("install", installFiles, 0, 0, 0), "", "--archive", p.v1)
}

// BenchmarkUpgrade2500 is the upgrade of that package to a version in which
// 1,200 files change, 1,200 stay, 100 go and 100 are new. Target: < 1.5 s.
func BenchmarkUpgrade2500(b *testing.B) {
	p := setupInstall(b)
	kept := installFiles - installRemoved - installChanged
	timeInstallCmd(b, p, p.atV1, checkInstall("upgrade", installAdded, installChanged, installRemoved, kept), "", "--archive", p.v2)
}

// BenchmarkRollback2500 is `cp-install rollback --version-id VER` after
// that upgrade, back to the checkpoint taken right after the first version
// was installed, integrity check included. Target: < 1.5 s.
func BenchmarkRollback2500(b *testing.B) {
	p := setupInstall(b)
	timeInstallCmd(b, p, p.atV2, func(result []byte) error {
		var r struct {
			VersionID string   `json:"version_id"`
			Restored  []string `json:"restored"`
			Removed   []string `json:"removed"`
			Integrity struct {
				AllPassed bool `json:"all_passed"`
			} `json:"integrity"`
		}
		if err := json.Unmarshal(result, &r); err != nil {
			return err
		}
		// Restored: the changed and the dropped files, the receipt, the
		// installed manifest and the two registries that changed. Removed:
		// the added files, and the kept archive and signature of 0.2.0.
		if r.VersionID != p.ckptV1 || !r.Integrity.AllPassed || len(r.Removed) != installAdded+2 || len(r.Restored) < installChanged+installRemoved {
			return fmt.Errorf("rolled back to %s (want %s): %d restored, %d removed, integrity passed %v",
				r.VersionID, p.ckptV1, len(r.Restored), len(r.Removed), r.Integrity.AllPassed)
		}
		return nil
	}, "rollback", "--version-id", p.ckptV1)
}
