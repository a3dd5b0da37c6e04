package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/lockfile"
	"github.com/control-plane/cp/internal/regfile"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// DefaultLockTimeout bounds how long a writer waits for registries/.lock.
const DefaultLockTimeout = 10 * time.Second

// lockTimeout is DefaultLockTimeout; tests shorten it.
var lockTimeout = DefaultLockTimeout

// testHook, when set, is called at the named points of a commit so that a
// test can crash the process there.
var testHook func(point, file string)

// Update replaces the rows of table t of the plane at root with fn's result.
// It is the only way registries are written; see the package doc for the
// lock and the atomicity contract.
//
// Under the exclusive lock Update re-reads t (so fn always sees the latest
// rows, in file order, and may modify them), calls fn once, checks its
// result against the format, sorts it by primary key and replaces the file.
// If fn returns an error, Update writes nothing and returns that error. A
// result that breaks the format is refused (REGISTRY_INVALID) and nothing
// is written; if ctx is done by the time fn returns, nothing is written and
// ctx's error is returned. A result equal to the current contents leaves
// the file untouched. Waiting for the lock longer than DefaultLockTimeout
// is LOCK_TIMEOUT.
func Update(ctx context.Context, root string, t Table, fn func(rows []Row) ([]Row, error)) error {
	return UpdateMany(ctx, root, []Table{t}, func(cur map[string][]Row) (map[string][]Row, error) {
		rows, err := fn(cur[t.File])
		if err != nil {
			return nil, err
		}
		return map[string][]Row{t.File: rows}, nil
	})
}

// UpdateMany is Update for several tables under the one lock. fn receives
// each table's current rows keyed by Table.File and returns the new rows by
// the same keys; a table missing from the result is left as it is (a nil
// slice under its key empties it), and a key that names no table in tables
// is an error. Every result is checked before any file is replaced.
//
// The files are replaced one after another, in the order of tables: each
// rename is atomic, the set is not. A crash between two renames leaves the
// first tables new and the rest old; a caller that needs all or nothing
// journals its intent (as cp-install does) and repairs on recovery.
func UpdateMany(ctx context.Context, root string, tables []Table, fn func(map[string][]Row) (map[string][]Row, error)) error {
	byFile := make(map[string]Table, len(tables))
	for _, t := range tables {
		if _, dup := byFile[t.File]; dup {
			return fmt.Errorf("registry: table %s named twice", t.File)
		}
		byFile[t.File] = t
	}
	dir := filepath.Join(root, Dir)
	l, err := lock(ctx, dir)
	if err != nil {
		return err
	}
	defer l.unlock()
	if _, err := os.Lstat(filepath.Join(root, journal.Dir)); err == nil {
		return &Error{File: journal.Dir, code: CodeJournalPending,
			Msg: "an interrupted cp-install change is pending; run cp-install recover first"}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	removeTemps(dir)

	old := make(map[string][]byte, len(tables))
	cur := make(map[string][]Row, len(tables))
	for _, t := range tables {
		data, err := regfile.ReadFile(filepath.Join(dir, t.File))
		if err != nil {
			return err
		}
		rows, err := parse(t, data)
		if err != nil {
			return err
		}
		old[t.File], cur[t.File] = data, rows
	}
	out, err := fn(cur)
	if err != nil {
		return err
	}
	for _, f := range slices.Sorted(maps.Keys(out)) {
		if _, ok := byFile[f]; !ok {
			return fmt.Errorf("registry: update returned rows for %s, which it did not lock and read", f)
		}
	}
	var ws []write
	for _, t := range tables {
		rows, ok := out[t.File]
		if !ok {
			continue
		}
		if err := validate(t, rows); err != nil {
			return err
		}
		if data := format(t, sorted(t, rows)); !bytes.Equal(data, old[t.File]) {
			ws = append(ws, write{t: t, data: data})
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return commit(dir, ws)
}

// A write is the new contents of one table.
type write struct {
	t    Table
	data []byte
}

// tempPrefix begins the name of every temporary file in registries/.
const tempPrefix = ".tmp-"

// commit makes every write durable in a temporary file, then renames each
// over its table and fsyncs dir. The caller holds the lock.
func commit(dir string, ws []write) error {
	if len(ws) == 0 {
		return nil
	}
	temps := make([]string, 0, len(ws))
	defer func() {
		for _, name := range temps {
			os.Remove(name) // a no-op once renamed
		}
	}()
	for _, w := range ws {
		name, err := writeTemp(dir, w)
		if name != "" {
			temps = append(temps, name)
		}
		if err != nil {
			return err
		}
	}
	hook("written", "")
	for i, w := range ws {
		if err := os.Rename(temps[i], filepath.Join(dir, w.t.File)); err != nil {
			return err
		}
		hook("renamed", w.t.File)
	}
	return atomicfile.SyncDir(dir)
}

// writeTemp writes w to a new temporary file in dir, fsynced, and returns
// its name (also on error, once created, so that the caller removes it).
func writeTemp(dir string, w write) (string, error) {
	f, err := os.CreateTemp(dir, tempPrefix+w.t.File+"-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(w.data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return name, err
}

// removeTemps removes what a crashed writer left in dir. The caller holds
// the lock, so no writer is using any of them. Failure to remove is
// harmless: readers never look at temporary files.
func removeTemps(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	for _, name := range names {
		os.Remove(name)
	}
}

func hook(point, file string) {
	if testHook != nil {
		testHook(point, file)
	}
}

// Lock is the plane's registry lock, registries/.lock, held by a writer
// that changes registries together with other files through its own
// journal (cp-install: installs, rollbacks and checkpoints hold it from
// their first read to their last write). While it is held, Update and
// UpdateMany in any process wait, and they refuse (JOURNAL_PENDING) while
// a journal is left under the root.
type Lock struct{ h *heldLock }

// Acquire takes the registry lock of the plane at root, waiting at most
// DefaultLockTimeout (LOCK_TIMEOUT). A process holding it must not call
// Update: flock excludes a second description in the same process too.
func Acquire(ctx context.Context, root string) (*Lock, error) {
	h, err := lock(ctx, filepath.Join(root, Dir))
	if err != nil {
		return nil, err
	}
	return &Lock{h}, nil
}

// Release releases the lock.
func (l *Lock) Release() { l.h.unlock() }

// Encode checks rows as the new contents of t (the rules of Update) and
// returns the file's bytes, rows sorted by primary key: for a holder of
// the Lock that writes registries through its own journal.
func Encode(t Table, rows []Row) ([]byte, error) {
	if err := validate(t, rows); err != nil {
		return nil, err
	}
	return format(t, sorted(t, rows)), nil
}

// Decode checks data as the contents of t's file, as Read does, and
// returns its rows.
func Decode(t Table, data []byte) ([]Row, error) { return parse(t, data) }

// A heldLock is registries/.lock, locked through its own open file
// description: flock(2) excludes other descriptions in this process too.
type heldLock struct{ f *os.File }

// lock takes the exclusive lock on dir/.lock, so that a stuck writer
// becomes LOCK_TIMEOUT rather than a hang.
func lock(ctx context.Context, dir string) (*heldLock, error) {
	f, err := lockfile.Open(filepath.Join(dir, ".lock")) // never through a planted link
	if err != nil {
		return nil, err
	}
	err = lockfile.Lock(ctx, f, true, lockTimeout)
	switch {
	case err == nil:
		return &heldLock{f}, nil
	case errors.Is(err, lockfile.ErrTimeout):
		err = &Error{File: Dir + "/.lock", code: CodeLockTimeout,
			Msg: fmt.Sprintf("still held by another writer after %s", lockTimeout)}
	case ctx.Err() == nil:
		err = fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	f.Close()
	return nil, err
}

// unlock releases the lock; closing the description would too.
func (l *heldLock) unlock() {
	lockfile.Unlock(l.f)
	l.f.Close()
}
