// Package regfile opens files that must be regular files: ledgers and their
// side files, archives, signatures, keys, manifests and receipts. Anything
// else a path may name is refused before a byte is read and without
// blocking: a FIFO (whose open or read waits for a writer that may never
// come), a device (/dev/zero reads forever; /dev/null reads as empty), a
// socket or a directory. With NoFollow, a symbolic link as the last
// component is refused too, for the files a tool writes beside others
// (X.tlog, X.lock, X.checkpoint), where following a planted link would let
// whoever can write the directory aim the tool's writes elsewhere.
//
// The check is made on the opened descriptor (open with O_NONBLOCK, fstat,
// then clear O_NONBLOCK), so no rename between a check and the open can
// slip another file in.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// NoFollow added to OpenFile's flag refuses a symbolic link as the last
// component of the path.
const NoFollow = syscall.O_NOFOLLOW

// Code is the stable error code of a refusal.
const Code = "NOT_REGULAR"

// Error is a refusal: the path names something other than a regular file.
// It is invalid input: the file given is not of the kind the tool reads; a
// retry cannot help.
type Error struct {
	Path string
	// Mode is the type found: fs.ModeSymlink for a link refused by
	// NoFollow, fs.ModeNamedPipe|fs.ModeSocket when the kernel said only
	// "no reader" (ENXIO).
	Mode fs.FileMode
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s is %s, not a regular file: refused", e.Path, describe(e.Mode))
}

// Code returns NOT_REGULAR.
func (e *Error) Code() string { return Code }

// Open opens path for reading, following symbolic links, and refuses
// anything that is not a regular file.
func Open(path string) (*os.File, error) {
	return OpenFile(path, os.O_RDONLY, 0)
}

// OpenFile is os.OpenFile that refuses anything but a regular file (and,
// with NoFollow in flag, a symbolic link as the last component). A file it
// creates is regular by construction.
func OpenFile(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, perm)
	if err != nil {
		if flag&NoFollow != 0 && errors.Is(err, syscall.ELOOP) {
			return nil, &Error{Path: path, Mode: fs.ModeSymlink}
		}
		if errors.Is(err, syscall.ENXIO) {
			return nil, &Error{Path: path, Mode: fs.ModeNamedPipe | fs.ModeSocket}
		}
		return nil, err
	}
	return regular(f, path)
}

// regular checks an open file is regular and clears O_NONBLOCK; it closes
// the file on failure.
func regular(f *os.File, path string) (*os.File, error) {
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &Error{Path: path, Mode: st.Mode().Type()}
	}
	// Regular files ignore O_NONBLOCK, but clear it so the descriptor is
	// exactly what a plain open gives (and reads never see EAGAIN).
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenIn is Open for a name inside an os.Root (which never leaves it).
func OpenIn(r *os.Root, name string) (*os.File, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return nil, &Error{Path: name, Mode: fs.ModeNamedPipe | fs.ModeSocket}
		}
		return nil, err
	}
	return regular(f, name)
}

// ReadIn is ReadFile for a name inside an os.Root.
func ReadIn(r *os.Root, name string) ([]byte, error) {
	f, err := OpenIn(r, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

// ReadFile is os.ReadFile for a regular file only.
func ReadFile(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

// ReadNoFollow is ReadFile that also refuses a symbolic link as the last
// component: for plane files (tier.json, receipts, manifests, kept
// archives) that a link would let a writer of the directory point outside
// the plane.
func ReadNoFollow(path string) ([]byte, error) {
	f, err := OpenFile(path, os.O_RDONLY|NoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAll(f)
}

// Check refuses an open file that is not regular: for descriptors that came
// from elsewhere (an os.Root, a caller).
func Check(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return &Error{Path: f.Name(), Mode: st.Mode().Type()}
	}
	return nil
}

func describe(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0 && m&fs.ModeSocket != 0:
		return "a FIFO or a socket"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file (mode " + m.String() + ")"
}

// readAll reads f to its end into one buffer sized from its fstat, as
// os.ReadFile does (io.ReadAll starts at 512 bytes and grows, copying:
// 0.05 ms of a gateway process for a 20 KB registry); a file that grows
// meanwhile, or whose size says nothing (procfs), is still read whole.
func readAll(f *os.File) ([]byte, error) {
	size := 0
	if st, err := f.Stat(); err == nil && st.Size() < 1<<30 {
		size = int(st.Size())
	}
	data := make([]byte, 0, max(size+1, 512)) // +1: EOF seen without a grow
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return data, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}
