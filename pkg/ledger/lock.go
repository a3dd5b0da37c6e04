package ledger

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"
)

// DefaultLockTimeout bounds how long an append waits for another writer.
const DefaultLockTimeout = 10 * time.Second

// flock takes an advisory lock on f (exclusive or shared), polling until
// timeout so that a stuck writer becomes LOCK_TIMEOUT rather than a hang.
func flock(ctx context.Context, f *os.File, exclusive bool, timeout time.Duration) error {
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	deadline := time.Now().Add(timeout)
	wait := 50 * time.Microsecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return errorf("IO_ERROR", "locking %s: %v", f.Name(), err)
		}
		if time.Now().After(deadline) {
			return errorf("LOCK_TIMEOUT", "ledger lock %s still held by another process after %s", f.Name(), timeout)
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

func funlock(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
