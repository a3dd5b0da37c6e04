package ledger

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/control-plane/cp/internal/lockfile"
)

// DefaultLockTimeout bounds how long an append waits for another writer.
const DefaultLockTimeout = 10 * time.Second

// flock takes the advisory lock on X.lock (exclusive or shared), so that a
// stuck writer becomes LOCK_TIMEOUT rather than a hang.
func flock(ctx context.Context, f *os.File, exclusive bool, timeout time.Duration) error {
	err := lockfile.Lock(ctx, f, exclusive, timeout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, lockfile.ErrTimeout):
		return errorf("LOCK_TIMEOUT", "ledger lock %s still held by another process after %s", f.Name(), timeout)
	case ctx.Err() != nil:
		return err
	}
	return errorf("IO_ERROR", "locking %s: %v", f.Name(), err)
}

func funlock(f *os.File) { lockfile.Unlock(f) }
