package gate

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/pkg/archive"
)

// BenchmarkRehashArchives measures how fast G0B re-hashes kept archives:
// 16 archives of 16 MiB (256 MiB in all, in the page cache), hashed on
// every core with crypto/sha256 (SHA-NI where the CPU has it). Target:
// ≥ 1 GB/s. The MB/s column is the figure.
func BenchmarkRehashArchives(b *testing.B) {
	dir := b.TempDir()
	const n, size = 16, 16 << 20
	buf := make([]byte, size)
	rand.Read(buf)
	var paths []string
	for i := range n {
		p := fmt.Sprintf("packages_store/PKG-B-%02d-1.0.0.tar.gz", i)
		if err := os.MkdirAll(filepath.Join(dir, "packages_store"), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), buf, 0o444); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		b.Fatal(err)
	}
	dirs := archive.NewDirRoots(r)
	defer dirs.Close()
	b.SetBytes(n * size)
	b.ResetTimer()
	for range b.N {
		if _, err := hashPaths(dirs, paths); err != nil {
			b.Fatal(err)
		}
	}
}
