package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWriteAndCreate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	require.NoError(t, Write(p, []byte("one"), 0o600))
	require.NoError(t, Write(p, []byte("two"), 0o444))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "two", string(b))
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o444), st.Mode().Perm())
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "no temporary file left behind")

	err = Create(p, []byte("three"), 0o644)
	require.True(t, errors.Is(err, fs.ErrExist))
	b, _ = os.ReadFile(p)
	require.Equal(t, "two", string(b), "Create never touches an existing file")
	require.NoError(t, Create(filepath.Join(dir, "g"), []byte("x"), 0o600))
}
