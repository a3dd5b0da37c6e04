package plane

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/pkg/ledger"
)

// Access is what a tier's ledger is opened for (OpenLedger).
type Access int

const (
	// ForReading reads entries, state and proofs: nothing is created and
	// no key is needed (an auditor, a gate).
	ForReading Access = iota
	// ForCheckpoint also writes checkpoints, signed with the plane's key
	// first (cp-ledger checkpoint).
	ForCheckpoint
	// ForAppend appends (creating the ledger if needed), each append
	// leaving the plane's signed checkpoint.
	ForAppend
)

// Actor is who writes to a plane's ledgers, as the request path admitted
// them: Name is stamped as each entry's actor (receipts and snapshots keep
// it too), and AuthOff stamps metadata._auth "off" on every entry written
// without a verified token (DESIGN.md §8).
type Actor struct {
	Name    string
	AuthOff bool
}

// OpenLedger opens the ledger of the tier whose directory is dir, where
// its tier.json says it is, and returns it with that tier.json. It is the
// one place a tier's ledger is opened: the store a tier uses is resolved
// here (the file store at ledger_path today; a database store, named by
// tier.json's ledger_store, adds its case here and nowhere else, DESIGN.md
// §11), and so is the plane's checkpoint key attached (ledgerOptions):
// every append through the store, and every checkpoint asked of it,
// carries the plane's signature. actor is stamped on what is appended.
func OpenLedger(dir string, a Access, actor Actor) (ledger.Store, Tier, error) {
	t, err := ReadTier(dir)
	if err != nil {
		return nil, t, err
	}
	s, err := OpenTierLedger(dir, t, LedgerPath(dir, t), a, actor)
	return s, t, err
}

// OpenTierLedger opens the ledger at path, one of the ledgers of the tier
// t whose directory is dir (its own, or another in its ledger directories,
// as cp-ledger --ledger names one): like the tier's own, it carries the
// plane's signed checkpoint. The tier's own ledger (path is LedgerPath) is
// in PostgreSQL when tier.json's ledger_store says so: the one place a
// store is chosen. Its other ledgers (workers', sessions') stay files.
func OpenTierLedger(dir string, t Tier, path string, a Access, actor Actor) (ledger.Store, error) {
	if err := noLinksInPlane(dir, t, path); err != nil {
		return nil, err
	}
	opts := ledger.Options{Actor: actor.Name, AuthOff: actor.AuthOff}
	if a != ForReading {
		var err error
		if opts, err = ledgerOptions(dir, t, path, actor); err != nil {
			return nil, err
		}
	}
	if t.Postgres() && filepath.Clean(path) == filepath.Clean(LedgerPath(dir, t)) {
		return openPostgres(dir, t, a, opts)
	}
	if a == ForAppend {
		return ledger.OpenWriter(path, opts)
	}
	return ledger.Open(path, opts)
}

// LedgerPath returns the path of the file store of tier t, whose
// directory is dir: for what names the file (messages, cp-ledger's
// answers), never to open it.
func LedgerPath(dir string, t Tier) string {
	return filepath.Join(dir, filepath.FromSlash(t.LedgerPath))
}

// noLinksInPlane refuses a symbolic link on the way from the plane's HO3
// root down to the ledger at path of tier t, whose directory is dir (the
// root itself may be named through links). A plane's ledger is opened
// where it is, never through a link: a directory that copies a plane's
// tier.json and links its ledger/ (or planes/ho1) to a real plane's would
// otherwise be a plane of its own to the firewall (no trusted keys, so no
// tokens) whose appends land in the real plane's ledger, signed with its
// key. What does not exist yet (a session's directory) is made, not
// followed.
func noLinksInPlane(dir string, t Tier, path string) error {
	base := dir
	if t.Tier != "HO3" {
		base = filepath.Dir(filepath.Dir(dir)) // planes/hoN
	}
	rel, err := filepath.Rel(base, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return refuse("LEDGER_LINKED", "ledger %s is not inside the plane at %s: refused", path, base)
	}
	p := base
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return refuse("LEDGER_LINKED", "%s is a symbolic link: a plane's ledger is opened where it is, never through a link", p)
		}
	}
	return nil
}

// PostgresCheckpointPath is where the checkpoints of tier t's ledger in
// PostgreSQL are also kept, outside the database: ledger/<name>.checkpoint
// in the tier's directory dir, so that rows cut from the database's tail
// are caught (DESIGN.md §11).
func PostgresCheckpointPath(dir string, t Tier) string {
	return filepath.Join(dir, "ledger", t.LedgerStore.Name+".checkpoint")
}
