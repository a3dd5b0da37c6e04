package regfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRefusesWithoutBlocking: every kind of non-regular file is refused at
// once (a FIFO with no writer would block a plain open forever).
func TestRefusesWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	reg := filepath.Join(dir, "reg")
	require.NoError(t, os.WriteFile(reg, []byte("x"), 0o644))
	link := filepath.Join(dir, "link")
	require.NoError(t, os.Symlink(reg, link))

	for _, tc := range []struct {
		name, path string
		flag       int
		what       string
	}{
		{"fifo read", fifo, os.O_RDONLY, "a FIFO"},
		{"fifo read-write", fifo, os.O_RDWR | os.O_CREATE, "a FIFO"},
		{"fifo write", fifo, os.O_WRONLY, "a FIFO or a socket"},
		{"dev zero", "/dev/zero", os.O_RDONLY, "a device"},
		{"dev null", "/dev/null", os.O_RDONLY, "a device"},
		{"directory", dir, os.O_RDONLY, "a directory"},
		{"symlink no-follow", link, os.O_RDONLY | NoFollow, "a symbolic link"},
		{"dangling symlink no-follow create", link + "2", os.O_RDWR | os.O_CREATE | NoFollow, "a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "dangling symlink no-follow create" {
				require.NoError(t, os.Symlink(filepath.Join(dir, "elsewhere"), tc.path))
			}
			done := make(chan error, 1)
			go func() {
				f, err := OpenFile(tc.path, tc.flag, 0o644)
				if f != nil {
					f.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				var re *Error
				require.True(t, errors.As(err, &re), "got %v, want a refusal", err)
				require.Equal(t, tc.what, describe(re.Mode))
				require.Equal(t, "NOT_REGULAR", re.Code())
			case <-time.After(5 * time.Second):
				t.Fatal("open blocked")
			}
		})
	}
	_, err := os.Stat(filepath.Join(dir, "elsewhere"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing was created through the link")

	b, err := ReadFile(link) // a link is followed unless NoFollow is asked
	require.NoError(t, err)
	require.Equal(t, "x", string(b))
	f, err := OpenFile(reg, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, Check(f))

	r, err := os.OpenRoot(dir)
	require.NoError(t, err)
	defer r.Close()
	_, err = ReadIn(r, "fifo")
	var re *Error
	require.ErrorAs(t, err, &re)
	b, err = ReadIn(r, "reg")
	require.NoError(t, err)
	require.Equal(t, "x", string(b))
}

// TestReadWhole: the readers return a file's bytes exactly, whatever its
// size against the buffer its fstat sized, and a file whose size says
// nothing (procfs: 0) is read whole.
func TestReadWhole(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 100_001} {
		p := filepath.Join(dir, "f")
		want := bytes.Repeat([]byte("abcdefg\n"), n/8+1)[:n]
		require.NoError(t, os.WriteFile(p, want, 0o644))
		for name, read := range map[string]func(string) ([]byte, error){"ReadFile": ReadFile, "ReadNoFollow": ReadNoFollow} {
			got, err := read(p)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s of %d bytes", name, n)
		}
		r, err := os.OpenRoot(dir)
		require.NoError(t, err)
		got, err := ReadIn(r, "f")
		r.Close()
		require.NoError(t, err)
		require.Equal(t, want, got, "ReadIn of %d bytes", n)
	}
	if _, err := os.Stat("/proc/self/status"); err == nil {
		b, err := ReadFile("/proc/self/status")
		require.NoError(t, err)
		require.Contains(t, string(b), "\nPid:", "procfs reports size 0: read to its end all the same")
	}
}
