package archive

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchArchive writes 1,000 files of 10,000 bytes (10 MB) of text-like
// data and returns the archive and the files' bytes.
func benchArchive(b *testing.B) (data []byte, files [][]byte) {
	b.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	const alphabet = "abcdefghijklmnopqrstuvwxyz      \n"
	var tree []treeFile
	for i := range 1000 {
		body := make([]byte, 10_000)
		for j := range body {
			body[j] = alphabet[rng.IntN(len(alphabet))]
		}
		files = append(files, body)
		tree = append(tree, treeFile{path: fmt.Sprintf("lib/d%02d/f%04d.txt", i%50, i), body: string(body)})
	}
	tree = append(tree, treeFile{path: ManifestName, body: manifestBody})
	files = append(files, []byte(manifestBody))
	src := b.TempDir()
	paths := makeTree(b, src, tree, time.Unix(0, 0), false)
	return writeArchive(b, src, paths), files
}

func BenchmarkExtract(b *testing.B) {
	data, files := benchArchive(b)
	var size int64
	for _, f := range files {
		size += int64(len(f))
	}
	b.Logf("archive: %d files, %d bytes of data, %d bytes compressed", len(files), size, len(data))

	b.Run("Extract", func(b *testing.B) {
		base := b.TempDir()
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			dir := filepath.Join(base, fmt.Sprint(i))
			if err := os.Mkdir(dir, 0o700); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := Extract(bytes.NewReader(data), dir, Limits{}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := os.RemoveAll(dir); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("Scan", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			if _, err := Scan(bytes.NewReader(data), Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Baselines: hashing each file's bytes, and gunzip plus one hash of
	// the whole decompressed stream.
	b.Run("SHA256Only", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			for _, f := range files {
				sha256.Sum256(f)
			}
		}
	})
	b.Run("GunzipSHA256", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(sha256.New(), zr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
