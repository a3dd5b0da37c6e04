package plane

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/control-plane/cp/internal/lockfile"
	"github.com/control-plane/cp/pkg/ledger"
)

// HoldLedger takes a tier's ledger's lock for a read-then-append step and
// keeps it until release, so that what a caller reads (a budget's sum, a
// session's count) still holds when its append lands, against every other
// process doing the same step:
//   - the file store's own append lock (Hold): every other writer of the
//     ledger waits, and the store's own appends go on without locking
//     again;
//   - for a tier in PostgreSQL, the database's advisory lock of the ledger
//     named name (pgstore's Advisory: a transaction-level lock on a
//     connection of its own, held until release), which every process
//     taking the same step over that ledger takes, on any host and through
//     a pooler in transaction mode;
//   - a store with neither: a lock file name.lock beside the tier's ledger
//     (dir/ledger; one host only).
//
// Nothing slow may run while it is held (a model call): other writers of
// the ledger wait for it, LOCK_TIMEOUT after ledger.DefaultLockTimeout.
func HoldLedger(ctx context.Context, dir string, s ledger.Store, name string) (release func(), err error) {
	if h, ok := s.(interface {
		Hold(context.Context) (func(), error)
	}); ok {
		return h.Hold(ctx)
	}
	return HoldKey(ctx, dir, s, name)
}

// HoldKey takes the lock named name of a tier's ledger, never its append
// lock: for a tier in PostgreSQL the database's advisory lock of the
// ledger named name (pgstore's Advisory), else a lock file name.lock
// beside the tier's ledger (dir/ledger). Only the processes taking the
// same step wait for it; the ledger's writers do not, and an append made
// while it is held takes the append lock as usual. cp-route holds HO3's
// route-session lock file, then the route-session advisory lock of each
// tier in PostgreSQL, while it reads a session's count across the tiers
// and appends what spends it.
func HoldKey(ctx context.Context, dir string, s ledger.Store, name string) (release func(), err error) {
	if a, ok := s.(interface {
		Advisory(context.Context, string) (func(), error)
	}); ok {
		return a.Advisory(ctx, name)
	}
	p := filepath.Join(dir, "ledger", name+".lock")
	f, err := lockfile.Open(p)
	if err != nil {
		return nil, err
	}
	// A hard link planted there is refused like a symbolic link (as a
	// ledger's own files are): another name of a ledger's lock would make
	// the holder wait for itself when it appends, until LOCK_TIMEOUT.
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Nlink > 1 {
		f.Close()
		return nil, refuse("LEDGER_LINKED", "%s has %d hard links: a lock file is refused under another file's name (remove it: it is made again)", p, sys.Nlink)
	}
	if err := lockfile.Lock(ctx, f, true, ledger.DefaultLockTimeout); err != nil {
		f.Close()
		return nil, err
	}
	return func() { lockfile.Unlock(f); f.Close() }, nil
}
