// Package lockfile takes the advisory locks (flock(2)) that serialize
// writers across processes: a ledger's X.lock and a plane's
// registries/.lock. A lock belongs to an open file description, so a
// second Open of the same file in one process is excluded too.
//
// Waiting polls with a non-blocking flock rather than blocking in the
// kernel, so that a holder that never lets go becomes ErrTimeout (the
// callers' LOCK_TIMEOUT, exit 4) rather than a hang, and a cancelled
// context stops the wait.
package lockfile

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/control-plane/cp/internal/regfile"
)

// ErrTimeout is Lock's error when the lock was still held by another
// description when the timeout ran out.
var ErrTimeout = errors.New("lock still held")

// Open opens (creating) the lock file at path for locking: never through
// a symbolic link as its last component, and only a regular file (a
// planted link or FIFO is refused, see regfile).
func Open(path string) (*os.File, error) {
	return regfile.OpenFile(path, os.O_RDWR|os.O_CREATE|regfile.NoFollow, 0o644)
}

// Lock takes f's lock, exclusive or shared, waiting at most timeout. It
// returns nil, ErrTimeout, ctx's error, or the error flock gave (for
// example EBADF), for the caller to word.
func Lock(ctx context.Context, f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	wait := 50 * time.Microsecond // grows to 5 ms: most waits are one short append
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		if wait < 5*time.Millisecond {
			wait *= 2
		}
	}
}

// Unlock releases f's lock; closing f releases it too.
func Unlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
