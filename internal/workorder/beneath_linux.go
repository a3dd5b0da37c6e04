package workorder

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// openBeneath opens the clean relative path p below the directory dir for
// reading in one openat2(2): RESOLVE_BENEATH (never outside dir),
// RESOLVE_NO_SYMLINKS (no symbolic link on any component of the path,
// the last included) and O_NONBLOCK (a FIFO is opened without waiting, and
// refused as not regular by the caller). The kernel resolves the path
// once, so what it opens is what was reached without a link: no race
// between a check of the path and the open. ok is false when the kernel
// has no openat2 (before 5.6, or a sandbox refusing it): the caller
// takes its portable path. Any other failure (a link, a missing file, a
// component that is not a directory) is returned as err, and the caller
// takes its portable path too, to name precisely what it found.
func openBeneath(dir *os.File, p string) (f *os.File, ok bool, err error) {
	fd, err := unix.Openat2(int(dir.Fd()), p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return os.NewFile(uintptr(fd), p), true, nil
}
