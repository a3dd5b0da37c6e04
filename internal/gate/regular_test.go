package gate

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/stretchr/testify/require"
)

// TestFIFOSigAndArchive: a FIFO as a package's archive or its .sig is
// refused at once (issue 10, item 15), never waited on.
func TestFIFOSigAndArchive(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "PKG-X.tar.gz")
	require.NoError(t, syscall.Mkfifo(a, 0o644))
	require.NoError(t, syscall.Mkfifo(a+".sig", 0o644))
	for name, fn := range map[string]func() error{
		"sig":     func() error { _, err := ReadSig(a); return err },
		"archive": func() error { _, _, _, err := readArchive(a, archive.Limits{}); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			var re *regfile.Error
			require.True(t, errors.As(err, &re), "%s: got %v", name, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocked on a FIFO", name)
		}
	}
	_, err := os.Stat(a)
	require.NoError(t, err)
}
