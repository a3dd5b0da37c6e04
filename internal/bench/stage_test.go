package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/control-plane/cp/internal/testenv"
)

// bigPackage is a plane with a registered framework and spec, and a package
// source tree of 5,000 files, 50 MB in all (random bytes: compression cannot
// shortcut the work), staged once.
type bigPackage struct {
	dir, root, src, archive string
	files                   []string
}

var (
	bigPkgOnce sync.Once
	bigPkg     bigPackage
	bigPkgErr  error
)

func run(dir, name string, args ...string) error {
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}

func setupBigPackage(b *testing.B) bigPackage {
	bigPkgOnce.Do(func() {
		dir, err := testenv.MkdirTemp("cp-bench-pkg-")
		if err != nil {
			bigPkgErr = err
			return
		}
		p := bigPackage{dir: dir, root: filepath.Join(dir, "plane"), src: filepath.Join(dir, "src")}
		steps := [][]string{
			{"cp-install", "bootstrap", "--root", "plane"},
			{"cp-pkg", "register-framework", "FMWK-BENCH", "--src", "fw.md", "--root", "plane"},
			{"cp-pkg", "register-spec", "SPEC-BENCH", "--src", "spec", "--root", "plane"},
			{"cp-pkg", "init", "PKG-BENCH", "--spec", "SPEC-BENCH", "--output", "src", "--root", "plane"},
		}
		os.WriteFile(filepath.Join(dir, "fw.md"), []byte("---\nframework_id: FMWK-BENCH\ntitle: Bench\nversion: 1.0.0\n---\n- MUST be fast.\n"), 0o644)
		os.MkdirAll(filepath.Join(dir, "spec"), 0o755)
		os.WriteFile(filepath.Join(dir, "spec", "manifest.json"), []byte(`{"spec_id":"SPEC-BENCH","framework_id":"FMWK-BENCH","assets":["lib/**"]}`), 0o644)
		for _, s := range steps {
			if bigPkgErr = run(dir, s[0], s[1:]...); bigPkgErr != nil {
				return
			}
		}
		buf := make([]byte, 10_000)
		for i := range 5000 {
			rel := fmt.Sprintf("lib/bench/d%02d/f%04d.bin", i%50, i)
			path := filepath.Join(p.src, rel)
			os.MkdirAll(filepath.Dir(path), 0o755)
			rand.Read(buf)
			if bigPkgErr = os.WriteFile(path, buf, 0o644); bigPkgErr != nil {
				return
			}
			p.files = append(p.files, path)
		}
		if bigPkgErr = run(dir, "cp-pkg", "stage", "PKG-BENCH", "--src", "src", "--declare", "--out", "dist", "--root", "plane"); bigPkgErr != nil {
			return
		}
		p.archive = filepath.Join(dir, "dist", "PKG-BENCH.tar.gz")
		bigPkg = p
	})
	if bigPkgErr != nil {
		b.Fatal(bigPkgErr)
	}
	return bigPkg
}

// BenchmarkStage5000 stages a 5,000-file, 50 MB package: hash every file,
// preflight the tree against the plane, write the deterministic archive.
func BenchmarkStage5000(b *testing.B) {
	p := setupBigPackage(b)
	b.ResetTimer()
	for range b.N {
		if err := run(p.dir, "cp-pkg", "stage", "PKG-BENCH", "--src", "src", "--out", "dist", "--root", "plane"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreflightSource5000 preflights the source tree (hashing it).
func BenchmarkPreflightSource5000(b *testing.B) {
	p := setupBigPackage(b)
	b.ResetTimer()
	for range b.N {
		if err := run(p.dir, "cp-pkg", "preflight", "PKG-BENCH", "--src", "src", "--root", "plane"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPreflightArchive5000 preflights the staged archive (gunzip,
// archive rules, hashing). It is unsigned, so it fails G5 by design (exit
// 1); everything else is checked.
func BenchmarkPreflightArchive5000(b *testing.B) {
	p := setupBigPackage(b)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(filepath.Join(binDir, "cp-pkg"), "preflight", "--archive", p.archive, "--root", "plane")
		cmd.Dir = p.dir
		cmd.Env = append(os.Environ(), "CONTROL_PLANE_ALLOW_UNSIGNED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
}

// BenchmarkSha256sum5000 is the baseline: sha256sum over the same files.
func BenchmarkSha256sum5000(b *testing.B) {
	p := setupBigPackage(b)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command("sha256sum", p.files...)
		cmd.Stdout = nil
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
