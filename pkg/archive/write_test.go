package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"github.com/stretchr/testify/require"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// treeFile is one file of a test tree.
type treeFile struct {
	path string
	body string
	exec bool
}

func testTree() []treeFile {
	return []treeFile{
		{path: ManifestName, body: manifestBody},
		{path: "frameworks/FMWK-001.md", body: "# Framework\n"},
		{path: "lib/x.py", body: strings.Repeat("print('x')\n", 500)},
		{path: "lib/Z.py", body: "z"},
		{path: "bin/run", body: "#!/bin/sh\necho hi\n", exec: true},
		{path: "empty", body: ""},
		{path: strings.Repeat("deep/", 40) + "file.md", body: "deep"}, // needs PAX
		{path: "ünïcode/日本.md", body: "u"},
	}
}

// makeTree writes files under dir with the given mtime; when scramble is
// set, non-exec files get odd permissions (0600/0664) and exec ones 0700,
// which Write must normalize.
func makeTree(t testing.TB, dir string, files []treeFile, mtime time.Time, scramble bool) []string {
	t.Helper()
	var paths []string
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mode := os.FileMode(0o644)
		switch {
		case f.exec && scramble:
			mode = 0o700
		case f.exec:
			mode = 0o755
		case scramble:
			mode = 0o600
		}
		require.NoError(t, os.WriteFile(p, []byte(f.body), mode))
		if scramble {
			require.NoError(t, os.Chmod(p, mode)) // else the umask applies
		}
		require.NoError(t, os.Chtimes(p, mtime, mtime))
		paths = append(paths, f.path)
	}
	return paths
}

func writeArchive(t testing.TB, dir string, paths []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, dir, paths))
	return buf.Bytes()
}

func TestWriteDeterministic(t *testing.T) {
	files := testTree()
	a := t.TempDir()
	pa := makeTree(t, a, files, time.Unix(1_700_000_000, 123), false)
	b := t.TempDir()
	rev := slices.Clone(files)
	slices.Reverse(rev)
	pb := makeTree(t, b, rev, time.Unix(42, 0), true)

	first := writeArchive(t, a, pa)
	require.Equal(t, first, writeArchive(t, a, pa), "same call twice")
	require.Equal(t, first, writeArchive(t, b, pb), "different mtimes, modes and order")
}

// TestWriteFiles: an archive of files held in memory is, byte for byte,
// Write's archive of a tree of those files (mode 0644), and refuses the
// same names.
func TestWriteFiles(t *testing.T) {
	files := map[string][]byte{}
	var tree []treeFile
	for _, f := range testTree() {
		if !f.exec {
			files[f.path] = []byte(f.body)
			tree = append(tree, f)
		}
	}
	dir := t.TempDir()
	paths := makeTree(t, dir, tree, time.Unix(42, 0), true)
	var buf bytes.Buffer
	require.NoError(t, WriteFiles(&buf, files))
	require.Equal(t, writeArchive(t, dir, paths), buf.Bytes())

	for _, bad := range []map[string][]byte{{"../x": nil}, {"a/../b": nil}, {"x": nil, "X": nil}, {"/abs": nil}} {
		buf.Reset()
		require.Error(t, WriteFiles(&buf, bad), "%v", bad)
		require.Zero(t, buf.Len(), "%v: names checked before anything is written", bad)
	}
}

func TestWriteFormat(t *testing.T) {
	dir := t.TempDir()
	paths := makeTree(t, dir, testTree(), time.Now(), true)
	data := writeArchive(t, dir, paths)

	zr, err := gzip.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	require.True(t, zr.ModTime.IsZero(), "gzip mtime")
	require.Equal(t, "", zr.Name)
	require.Equal(t, "", zr.Comment)
	require.Equal(t, byte(255), zr.OS)
	require.Equal(t, byte(4), data[8], "XFL for the fixed best-speed level")

	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.Equal(t, byte(tar.TypeReg), h.Typeflag, h.Name)
		require.True(t, h.ModTime.Equal(time.Unix(0, 0)), "mtime of %s", h.Name)
		require.Equal(t, 0, h.Uid)
		require.Equal(t, 0, h.Gid)
		require.Equal(t, "", h.Uname)
		require.Equal(t, "", h.Gname)
		want := int64(0o644)
		if h.Name == "bin/run" {
			want = 0o755
		}
		require.Equal(t, want, h.Mode, h.Name)
		names = append(names, h.Name)
	}
	require.True(t, slices.IsSorted(names), "members sorted: %v", names)
	require.Len(t, names, len(testTree()))
}

func TestWriteExtractRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := testTree()
	paths := makeTree(t, src, files, time.Now(), true)
	data := writeArchive(t, src, paths)

	parent, staging := newStaging(t)
	c, err := Extract(bytes.NewReader(data), staging, Limits{})
	require.NoError(t, err)
	requireOnlyStaging(t, parent)
	require.Equal(t, sha(data), c.ArchiveSHA256)
	require.Equal(t, manifestBody, string(c.Manifest))
	require.Len(t, c.Files, len(files))

	slices.SortFunc(files, func(a, b treeFile) int { return strings.Compare(a.path, b.path) })
	for i, f := range files {
		got := c.Files[i]
		require.Equal(t, f.path, got.Path)
		require.Equal(t, int64(len(f.body)), got.Size)
		require.Equal(t, sha([]byte(f.body)), got.SHA256)
		want := os.FileMode(0o644)
		if f.exec {
			want = 0o755
		}
		require.Equal(t, want, got.Mode, f.path)
		b, err := os.ReadFile(filepath.Join(staging, filepath.FromSlash(f.path)))
		require.NoError(t, err)
		require.Equal(t, f.body, string(b))
	}

	// The extracted tree archives back to the same bytes.
	require.Equal(t, data, writeArchive(t, staging, paths))
}

func TestWriteRefuses(t *testing.T) {
	dir := t.TempDir()
	paths := makeTree(t, dir, testTree(), time.Now(), false)
	require.NoError(t, os.Symlink("lib/x.py", filepath.Join(dir, "link")))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(dir, "abs")))

	for _, tc := range []struct {
		name  string
		paths []string
		rule  string // "" for a plain error
	}{
		{"symlink", append(slices.Clone(paths), "link"), ""},
		{"absolute symlink", []string{ManifestName, "abs"}, ""},
		{"directory", []string{ManifestName, "lib"}, ""},
		{"missing", []string{ManifestName, "nope"}, ""},
		{"dot dot", []string{ManifestName, "../x"}, "dot_dot"},
		{"absolute", []string{ManifestName, "/etc/passwd"}, "absolute_name"},
		{"unclean", []string{ManifestName, "lib/./x.py"}, "unclean_name"},
		{"duplicate", []string{ManifestName, "lib/x.py", "lib/x.py"}, "duplicate_name"},
		{"case fold", []string{ManifestName, "lib/x.py", "LIB/x.py"}, "case_fold_collision"},
		{"file as dir", []string{ManifestName, "empty", "empty/x"}, "case_fold_collision"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, dir, tc.paths)
			require.Error(t, err)
			var ue *UnsafeError
			if tc.rule == "" {
				require.False(t, errors.As(err, &ue), "want a plain error, got %v", err)
				return
			}
			require.ErrorAs(t, err, &ue)
			require.Equal(t, tc.rule, ue.Rule)
			require.Equal(t, 0, buf.Len(), "names are checked before anything is written")
		})
	}
}
