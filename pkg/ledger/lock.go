package ledger

import (
	"context"
	"errors"
	"fmt"
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
		// Cancelled while waiting (SIGINT, SIGTERM, a deadline): said
		// as what was waited for, still a context's error (errors.Is).
		return &Error{code: "CANCELLED", msg: fmt.Sprintf("cancelled while waiting for the ledger lock %s (held by another process)", f.Name()), cause: ctx.Err()}
	}
	return errorf("IO_ERROR", "locking %s: %v", f.Name(), err)
}

func funlock(f *os.File) { lockfile.Unlock(f) }

// lock takes the ledger's lock, unless Hold holds it already.
func (l *Ledger) lock(ctx context.Context, exclusive bool, timeout time.Duration) error {
	if l.held {
		return nil
	}
	return flock(ctx, l.lockF, exclusive, timeout)
}

// unlock releases what lock took.
func (l *Ledger) unlock() {
	if !l.held {
		funlock(l.lockF)
	}
}

// Hold takes the ledger's append lock exclusively and keeps it until
// release is called: every other writer (another process, another open
// store) waits, while this store's own calls (State, Lines, Verify,
// Append) go on without locking again. It is for a caller that copies the
// ledger elsewhere and must know nothing is appended meanwhile, then
// closes it to writers for good (cp-ledger migrate unlinks the file
// before release: a writer that waited then writes nothing,
// LEDGER_MOVED). Not safe for concurrent use with this store's other
// methods.
func (l *Ledger) Hold(ctx context.Context) (release func(), err error) {
	if l.lockF == nil || l.held {
		return nil, errorf("INTERNAL", "ledger %s: no lock to hold", l.path)
	}
	if err := flock(ctx, l.lockF, true, l.opts.LockTimeout); err != nil {
		return nil, err
	}
	l.held = true
	// What this store knows of the files stands while their sizes do
	// (sync checks them under the lock, as an append does): another
	// writer's append changes them.
	return func() {
		l.held = false
		funlock(l.lockF)
	}, nil
}
