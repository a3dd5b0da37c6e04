// Package atomicfile writes files so that a crash at any instant leaves
// either the old content or the new, never a mix, and an acknowledged write
// is on disk. It also holds the two primitives such writers share:
// directory fsyncs (SyncDir, SyncIn) and a pooled copy (Copy).
package atomicfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Write replaces path with b, mode perm: a temporary file in the same
// directory is written, fsynced, renamed over path, and the directory
// fsynced. Readers see the old bytes or the new ones.
func Write(path string, b []byte, perm fs.FileMode) error {
	return place(path, b, perm, os.Rename)
}

// Publish writes b to a new file at path, mode perm, as Write does, but
// links the temporary file into place instead of renaming it: a complete
// file appears or none does, and an existing one is never replaced (the
// error then satisfies errors.Is(err, fs.ErrExist)). For files written
// once: work orders, approvals, a key directory's binding.
func Publish(path string, b []byte, perm fs.FileMode) error {
	return place(path, b, perm, os.Link)
}

// place writes b to a temporary file beside path, fsyncs it, puts it at
// path with put (rename or link) and fsyncs the directory.
func place(path string, b []byte, perm fs.FileMode, put func(from, to string) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after a rename; the extra name after a link
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil { // whatever the umask
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := put(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// Create writes b to a new file at path, mode perm, fsynced, and fsyncs the
// directory. An existing file is never touched: the error then satisfies
// errors.Is(err, fs.ErrExist).
func Create(path string, b []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil { // whatever the umask
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, making the names created or renamed in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// SyncIn fsyncs a file or directory named relative to an os.Root, for
// writers that work only through one (SyncDir for a directory by path).
func SyncIn(r *os.Root, name string) error {
	f, err := r.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	return nil
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// Copy copies src to dst through a pooled buffer, for the writers and
// hashers that move thousands of small files: *os.File's WriterTo would
// allocate a buffer per file.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	b := bufs.Get().(*[]byte)
	defer bufs.Put(b)
	return io.CopyBuffer(dst, struct{ io.Reader }{src}, *b)
}
