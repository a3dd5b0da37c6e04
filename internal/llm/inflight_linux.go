package llm

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/control-plane/cp/internal/lockfile"
)

// inflightSupported reports whether reservations can be marked here.
const inflightSupported = true

// inflightHolder holds the in-flight locks of one batch of calls, on its
// own open file description: closing it releases them all.
type inflightHolder struct{ f *os.File }

func openInflight(dir string) (*inflightHolder, error) {
	f, err := lockfile.Open(inflightFile(dir))
	if err != nil {
		return nil, err
	}
	return &inflightHolder{f: f}, nil
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
