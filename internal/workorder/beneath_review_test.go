package workorder

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestInputFileDeviceBothPaths: a device node among the declared files
// (one only root can make: skipped otherwise) gets the portable walk's
// verdict from the openat2 path too, and a file replaced by a link or a
// FIFO after a first good check is refused by both on the next.
func TestInputFileDeviceBothPaths(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "lib"), 0o755))
	good := writeFile(t, root, "lib/a.py", "a\n")
	bad := func(d map[string]any, format string, args ...any) *Error { return mismatch(0, d, format, args...) }
	check := func(p string) [2]error {
		var errs [2]error
		for i, portable := range []bool{false, true} {
			ic := inputChecker{ctx: context.Background(), root: root, portable: portable}
			errs[i] = ic.file(p, good, bad)
			ic.close()
		}
		return errs
	}
	errs := check("lib/a.py")
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	// Replaced by a FIFO, then by a link to the good bytes elsewhere.
	require.NoError(t, os.Rename(filepath.Join(root, "lib", "a.py"), filepath.Join(root, "a.py")))
	require.NoError(t, syscall.Mkfifo(filepath.Join(root, "lib", "a.py"), 0o644))
	errs = check("lib/a.py")
	require.Error(t, errs[0])
	require.Equal(t, errs[1].Error(), errs[0].Error())
	require.NoError(t, os.Remove(filepath.Join(root, "lib", "a.py")))
	require.NoError(t, os.Symlink("../a.py", filepath.Join(root, "lib", "a.py")))
	errs = check("lib/a.py")
	require.Error(t, errs[0])
	require.Equal(t, errs[1].Error(), errs[0].Error())
	if os.Geteuid() != 0 {
		t.Skip("a device node needs root to make")
	}
	if err := syscall.Mknod(filepath.Join(root, "lib", "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Skipf("mknod: %v", err)
	}
	errs = check("lib/null")
	require.Error(t, errs[0])
	require.Equal(t, CodeInputMismatch, code(t, errs[0]))
	require.Equal(t, errs[1].Error(), errs[0].Error())
}
