package archive

import (
	"bytes"
	"compress/gzip"
	"errors"
	"github.com/stretchr/testify/require"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzLimits keeps each fuzz run cheap: a bomb stops after about 1.3 MiB.
var fuzzLimits = Limits{MaxFiles: 64, MaxTotalBytes: 1 << 20, MaxFileBytes: 256 << 10, MaxNameBytes: 255, MaxManifestBytes: 64 << 10}

// FuzzExtract feeds arbitrary bytes, seeded with the hostile corpus and
// valid archives, to Extract and Scan; see checkArchive for the invariants.
func FuzzExtract(f *testing.F) {
	for _, tc := range hostileCorpus() {
		if tc.name == "stream bomb" {
			continue // 8 MiB of zeros: a slow seed that teaches the fuzzer nothing
		}
		f.Add(tc.data("/nonexistent-parent"))
	}
	f.Add(tgz(manifest(), dir("lib/"), file("lib/x.py", "print(1)\n")))
	src := f.TempDir()
	paths := makeTree(f, src, testTree(), time.Unix(0, 0), false)
	f.Add(writeArchive(f, src, paths))

	f.Fuzz(checkArchive)
}

// FuzzTarStream fuzzes the tar layer: the input is gzipped before it is
// extracted, so mutations reach tar headers and names instead of breaking
// the deflate stream.
func FuzzTarStream(f *testing.F) {
	for _, tc := range hostileCorpus() {
		zr, err := gzip.NewReader(bytes.NewReader(tc.data("/nonexistent-parent")))
		if err != nil {
			continue
		}
		if raw, err := io.ReadAll(io.LimitReader(zr, 1<<20)); err == nil && len(raw) < 1<<20 {
			f.Add(raw)
		}
	}
	f.Add(rawTar(true, manifest(), dir("lib/"), file("lib/x.py", "print(1)\n")))
	f.Fuzz(func(t *testing.T, raw []byte) { checkArchive(t, gz(raw)) })
}

// checkArchive extracts and scans data and checks the invariants: no panic,
// nothing outside the staging dir, either a refusal (same rule for Extract
// and Scan) with an empty staging dir, or contents that match the disk.
func checkArchive(t *testing.T, data []byte) {
	parent, staging := newStaging(t)
	c, err := Extract(bytes.NewReader(data), staging, fuzzLimits)
	sc, serr := Scan(bytes.NewReader(data), fuzzLimits)
	requireOnlyStaging(t, parent)

	if err != nil {
		var ue *UnsafeError
		if !errors.As(err, &ue) {
			t.Fatalf("an in-memory reader can only be refused, got %T %v", err, err)
		}
		if c != nil {
			t.Fatalf("contents returned with an error")
		}
		ents, rerr := os.ReadDir(staging)
		require.NoError(t, rerr)
		if len(ents) != 0 {
			t.Fatalf("staging dir not empty after %v", err)
		}
		var sue *UnsafeError
		if !errors.As(serr, &sue) || sue.Rule != ue.Rule {
			t.Fatalf("Extract refused with %v, Scan with %v", err, serr)
		}
		return
	}
	require.NoError(t, serr, "Scan disagrees with Extract")
	require.Equal(t, c, sc, "Scan and Extract contents differ")
	require.Equal(t, sha(data), c.ArchiveSHA256)

	// What is on disk is exactly what Contents lists.
	want := map[string]File{}
	for _, f := range c.Files {
		want[f.Path] = f
	}
	err = filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(staging, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			t.Fatalf("%s is not a regular file", rel)
		}
		f, ok := want[rel]
		if !ok {
			t.Fatalf("%s on disk but not in Contents", rel)
		}
		delete(want, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if sha(b) != f.SHA256 || int64(len(b)) != f.Size {
			t.Fatalf("%s: content differs from Contents", rel)
		}
		return nil
	})
	require.NoError(t, err)
	if len(want) != 0 {
		t.Fatalf("in Contents but not on disk: %v", want)
	}
}
