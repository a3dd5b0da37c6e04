package llm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/control-plane/cp/internal/lockfile"
)

// inflightSupported reports whether reservations can be marked here.
const inflightSupported = true

// inflightHolder holds the in-flight locks of one batch of calls, on its
// own open file description: closing it releases them all. id names the
// file (fileID) its reservations record as inflight_file.
type inflightHolder struct {
	f  *os.File
	id string
}

func openInflight(dir string) (*inflightHolder, error) {
	f, err := lockfile.Open(inflightFile(dir))
	if err != nil {
		return nil, err
	}
	id, err := fileID(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &inflightHolder{f: f, id: id}, nil
}

// fileID names the open file f by its device and inode ("dev:ino"). While
// a caller holds its mark the file stays open, so no other file can take
// that inode on that device: a judge that opened a file of another id at
// the same path (the lock file replaced, or another machine's directory
// over the same PostgreSQL tier on this kernel) is not looking at the
// caller's lock.
func fileID(f *os.File) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// hold takes reservation rid's lock (never waiting: its offset is its
// own).
func (h *inflightHolder) hold(rid string) error {
	off, ok := inflightOffset(rid)
	if !ok {
		return errors.New("not a reservation id")
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	return unix.FcntlFlock(h.f.Fd(), unix.F_OFD_SETLK, &lk)
}

func (h *inflightHolder) close() { h.f.Close() }

// inflightHeld reports whether reservation rid's lock is held by anyone
// (through the judge's own open file description, which holds none).
func inflightHeld(judge *os.File, rid string) (bool, error) {
	off, ok := inflightOffset(rid)
	if !ok {
		return true, errors.New("not a reservation id")
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if err := unix.FcntlFlock(judge.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return true, err
	}
	return lk.Type != unix.F_UNLCK, nil
}
