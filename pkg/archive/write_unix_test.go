//go:build unix

package archive

import (
	"github.com/stretchr/testify/require"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestWriteDeterministicUmask builds the same tree under two umasks.
func TestWriteDeterministicUmask(t *testing.T) {
	files := testTree()
	a := t.TempDir()
	pa := makeTree(t, a, files, time.Unix(1, 0), false)

	old := syscall.Umask(0o077)
	b := t.TempDir()
	rev := slices.Clone(files)
	slices.Reverse(rev)
	pb := makeTree(t, b, rev, time.Unix(2_000_000_000, 0), false)
	syscall.Umask(old)

	require.Equal(t, writeArchive(t, a, pa), writeArchive(t, b, pb))
}

// TestMakeTreeUmask checks the umask test above really varies the modes.
func TestMakeTreeUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	makeTree(t, dir, testTree()[:1], time.Unix(1, 0), false)
	fi, err := os.Stat(filepath.Join(dir, ManifestName))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}
