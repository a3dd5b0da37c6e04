package plane

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/ledger"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// DefaultDSNEnv is the environment variable that holds a ledger
// database's DSN when migrate is not told another (DESIGN.md §11).
const DefaultDSNEnv = "CONTROL_PLANE_LEDGER_DSN"

// Migration is what Migrate did to a tier's ledger.
type Migration struct {
	Tier       string `json:"tier"`
	From       string `json:"from"`
	To         string `json:"to"`
	Name       string `json:"name,omitempty"`    // the ledger's name in the database
	DSNEnv     string `json:"dsn_env,omitempty"` // the variable that holds its DSN
	Entries    int64  `json:"entries"`           // the ledger's entries in its new store, the record included
	RootHash   string `json:"root_hash"`
	Seq        int64  `json:"seq"`         // the LEDGER_MIGRATED entry that records the move
	TierSHA256 string `json:"tier_sha256"` // the tier.json in force now, which that entry records
	// Resumed: an earlier run had passed the point after which only
	// finishing is safe (the source closed to writers); this one finished it.
	Resumed bool `json:"resumed"`
	// Unchanged: the ledger was already there; nothing was done.
	Unchanged bool `json:"unchanged"`
}

// Migrate moves the ledger of the tier whose directory is dir to the
// store named to (StorePostgres, with target's dsn_env and name; or
// StoreFile, back to the file at ledger_path), as a recorded admin
// operation (DESIGN.md §11): the entries, byte for byte, and their stored
// hashes move; the move is recorded in the ledger itself, as a
// LEDGER_MIGRATED entry that names both stores and the hash of the
// tier.json it leads to (G6 holds tier.json to it); and tier.json is
// switched last.
//
// The order of its steps, and what a kill at each point leaves (a run
// with the same arguments then finishes the move):
//
//  1. Checks, before anything is written: the source verifies (its
//     checkpoint included), the plane's key is at hand, the target is
//     reachable and empty, or holds a prefix of the source (an earlier run
//     copied, then stopped). Killed here: nothing changed.
//  2. LEDGER_MIGRATED appended to the source, as any entry. Killed after:
//     the tier works on in its old store; G6 reports TIER_UNRECORDED (a
//     move recorded and not finished) until a run finishes one.
//  3. The source held: its append lock (a file) or its head row (the
//     database), so nothing is appended while it is copied; it is verified
//     again under it.
//  4. The copy: into the database, one transaction with a signed
//     checkpoint, kept outside too (pgstore.Import); into the file, .jsonl
//     and .tlog written beside their names and linked into place, then its
//     signed checkpoint (ledger.ExportFile). The copy is verified, held to
//     the source's checkpoint. Killed here: the source is intact and open;
//     the next run replaces the copy (a file that holds a prefix of the
//     source) or extends it (a database ledger).
//  5. The source closed to writers for good, the point after which only
//     finishing is safe: the file is unlinked under its lock (its
//     X.checkpoint stays, so no writer can start an empty ledger there,
//     and a writer that waited for the lock writes nothing: LEDGER_MOVED);
//     the database's head row is marked moved in the transaction that
//     held it (every later append: LEDGER_MOVED). Killed after: every
//     append fails closed until a run finishes the move.
//  6. tier.json written (a temporary file, fsynced, renamed): the switch.
//
// A migration to the store the tier is in already is Unchanged.
func Migrate(ctx context.Context, dir, to string, target LedgerStore, actor Actor) (Migration, error) {
	t, err := ReadTier(dir)
	if err != nil {
		return Migration{}, err
	}
	m := Migration{Tier: t.Tier, To: to, From: StoreFile}
	if t.Postgres() {
		m.From, m.Name, m.DSNEnv = StorePostgres, t.LedgerStore.Name, t.LedgerStore.DSNEnv
	}
	switch to {
	case StorePostgres:
		target.Kind = StorePostgres
		if err := target.check("--to postgres"); err != nil {
			return m, err
		}
		m.Name, m.DSNEnv = target.Name, target.DSNEnv
		if t.Postgres() {
			if *t.LedgerStore == target {
				m.Unchanged = true
				return m, nil
			}
			return m, refuse("MIGRATE_REFUSED", "%s's ledger is in PostgreSQL as %s already: move it to the file store first (--to file)", t.Tier, t.LedgerStore.Name)
		}
		return toPostgres(ctx, dir, t, target, actor, m)
	case StoreFile:
		if !t.Postgres() {
			m.Unchanged = true
			return m, nil
		}
		return toFile(ctx, dir, t, actor, m)
	}
	return m, refuse("MIGRATE_REFUSED", "--to %q: want postgres or file", to)
}

// stopAfter, when set (by tests), is called after each numbered step of
// a move; an error stops the move there, as a kill would (deferred
// releases run, as a dying process's locks and connections go).
var stopAfter func(step int) error

func stop(step int) error {
	if stopAfter == nil {
		return nil
	}
	return stopAfter(step)
}

// migrated is the entry that records a move, before the copy.
func migrated(t Tier, m Migration, tierHash string) ledger.Draft {
	meta := map[string]any{"_tier": t.Tier, "from": m.From, "to": m.To, "tier_sha256": tierHash}
	if m.Name != "" {
		meta["name"], meta["dsn_env"] = m.Name, m.DSNEnv
	}
	return ledger.Draft{EventType: "LEDGER_MIGRATED", SubmissionID: t.PlaneID, Decision: "MOVED",
		Reason: "the tier's ledger moves from the " + m.From + " store to the " + m.To + " store", Metadata: meta}
}

// tierJSON is tier.json's bytes for t, as bootstrap writes them, and
// their hash.
func tierJSON(t Tier) ([]byte, string, error) {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, "", err
	}
	b = append(b, '\n')
	return b, SHA256(b), nil
}

func checkpointVerifiers(dir string) (note.Verifiers, error) {
	ks, err := trust.Load(dir)
	if err != nil {
		return nil, err
	}
	return trust.Verifiers(ks, trust.PurposeCheckpoint, "")
}

// verified verifies s and refuses it (LEDGER_INVALID, naming the first
// issue) when it does not hold.
func verified(ctx context.Context, s ledger.Store, what string, opts ledger.VerifyOptions) (ledger.Report, error) {
	rep, err := ledger.Verify(ctx, s, opts)
	if err != nil {
		return rep, err
	}
	if !rep.Valid {
		is := rep.Issues[0]
		return rep, refuse("LEDGER_INVALID", "%s does not verify: seq %d: %s: %s (run cp-ledger verify)", what, is.Seq, is.Code, is.Message)
	}
	return rep, nil
}

// lastMigration returns the last LEDGER_MIGRATED entry of s, nil if none.
func lastMigration(ctx context.Context, s ledger.Store) (*ledger.Entry, error) {
	var last *ledger.Entry
	err := s.Find(ctx, ledger.Query{EventTypes: []string{"LEDGER_MIGRATED"}}, func(e *ledger.Entry) bool {
		last = e
		return true
	})
	return last, err
}

// records reports whether e records the move m to the tier.json hashing to h.
func records(e *ledger.Entry, m Migration, h string) bool {
	return e != nil && e.Metadata["from"] == m.From && e.Metadata["to"] == m.To && e.Metadata["tier_sha256"] == h
}

// database is a tier's ledger in PostgreSQL as Migrate and Import use it
// (pgstore.Store; openDatabase, in postgres.go, opens one, and refuses in a
// binary built without the store).
type database interface {
	ledger.Store
	Import(ctx context.Context, src ledger.Store) (ledger.State, error)
	MoveOut(ctx context.Context, to string, fn func(ledger.State) error) error
	Moved(ctx context.Context) (string, error)
}

func toPostgres(ctx context.Context, dir string, t Tier, ls LedgerStore, actor Actor, m Migration) (Migration, error) {
	path := LedgerPath(dir, t)
	next := t
	next.LedgerStore = &ls
	tj, h, err := tierJSON(next)
	if err != nil {
		return m, err
	}
	m.TierSHA256 = h
	vs, err := checkpointVerifiers(dir)
	if err != nil {
		return m, err
	}
	expect := t.PlaneName != ""
	pg, err := openDatabase(ctx, dir, t, ls, actor)
	if err != nil {
		return m, err
	}
	defer pg.Close()
	if moved, err := pg.Moved(ctx); err != nil {
		return m, err
	} else if moved != "" {
		return m, refuse("LEDGER_NOT_EMPTY", "ledger %s in the database was moved out before (to the %s store): a name holds one ledger once; choose another --name", ls.Name, moved)
	}

	fi, err := os.Lstat(path)
	if gone := errors.Is(err, fs.ErrNotExist); gone || err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		// Step 5 was done: the file is gone (or an empty one stands there,
		// left by a writer refused since). Finish only if the database
		// holds this very move, whole.
		rec, err := lastMigration(ctx, pg)
		if err != nil {
			return m, err
		}
		if !records(rec, m, h) {
			return m, refuse("LEDGER_INVALID", "%s is missing or empty and ledger %s in the database does not record a move to it: nothing to finish (restore the file ledger)", path, ls.Name)
		}
		if !gone {
			hashPath, _, _ := ledger.SidePaths(path)
			for _, p := range []string{path, hashPath, ledger.IndexPath(path)} {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return m, err
				}
			}
		}
		rep, err := verified(ctx, pg, "ledger "+ls.Name+" in the database", ledger.VerifyOptions{Verifiers: vs, Expect: expect})
		if err != nil {
			return m, err
		}
		m.Resumed = true
		return finish(dir, tj, m, rep, rec.Seq)
	}

	// 1. Checks.
	f, err := OpenTierLedger(dir, t, path, ForAppend, actor)
	if err != nil {
		return m, err
	}
	defer f.Close()
	fl, ok := f.(*ledger.Ledger)
	if !ok {
		return m, refuse("INTERNAL", "%s's ledger is not a file", t.Tier)
	}
	if _, err := verified(ctx, fl, path, ledger.VerifyOptions{Verifiers: vs, Expect: expect}); err != nil {
		return m, err
	}
	if err := prefixOf(ctx, pg, fl, "ledger "+ls.Name+" in the database", path); err != nil {
		return m, err
	}
	// 2. The record.
	es, err := fl.Append(ctx, []ledger.Draft{migrated(t, m, h)})
	if err != nil {
		return m, err
	}
	m.Seq = es[0].Seq
	if err := stop(2); err != nil {
		return m, err
	}
	// 3. The file held: nothing is appended to it from now on.
	release, err := fl.Hold(ctx)
	if err != nil {
		return m, err
	}
	defer release()
	rep, err := verified(ctx, fl, path, ledger.VerifyOptions{Verifiers: vs, Expect: expect})
	if err != nil {
		return m, err
	}
	if err := stop(3); err != nil {
		return m, err
	}
	held, err := fl.ReadCheckpoint()
	if err != nil {
		return m, err
	}
	// 4. The copy, one transaction, verified.
	if _, err := pg.Import(ctx, fl); err != nil {
		return m, err
	}
	opts := ledger.VerifyOptions{Verifiers: vs, Expect: expect}
	if held != nil {
		opts.Held = [][]byte{held}
	}
	if _, err := verified(ctx, pg, "ledger "+ls.Name+" in the database", opts); err != nil {
		return m, err
	}
	if err := stop(4); err != nil {
		return m, err
	}
	// 5. The file closed to writers: unlinked under its lock. X.checkpoint
	// (and X.lock) stay: an append to an empty file there would
	// contradict the checkpoint, and is refused.
	hashPath, _, _ := ledger.SidePaths(path)
	for _, p := range []string{path, hashPath, ledger.IndexPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return m, err
		}
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return m, err
	}
	if err := stop(5); err != nil {
		return m, err
	}
	// 6. The switch.
	return finish(dir, tj, m, rep, m.Seq)
}

// prefixOf refuses a target that holds entries the source does not
// begin with: a copy may only be resumed.
func prefixOf(ctx context.Context, target, src ledger.Store, what, srcWhat string) error {
	st, err := target.State(ctx)
	if err != nil || st.Size == 0 {
		return err
	}
	sst, err := src.State(ctx)
	if err != nil {
		return err
	}
	if st.Size <= sst.Size {
		if r, err := tlog.TreeHash(st.Size, src); err != nil {
			return err
		} else if r == st.Root {
			return nil
		}
	}
	return refuse("LEDGER_NOT_EMPTY", "%s already holds %d entries that are not the first ones of %s: a migration goes into an empty ledger (or resumes its own copy)", what, st.Size, srcWhat)
}

// finish writes tier.json, the last step of a move.
func finish(dir string, tj []byte, m Migration, rep ledger.Report, seq int64) (Migration, error) {
	if err := atomicfile.Write(filepath.Join(dir, "tier.json"), tj, 0o644); err != nil {
		return m, err
	}
	m.Entries, m.RootHash, m.Seq = rep.Entries, rep.RootHash, seq
	return m, nil
}

func toFile(ctx context.Context, dir string, t Tier, actor Actor, m Migration) (Migration, error) {
	path := LedgerPath(dir, t)
	next := t
	next.LedgerStore = nil
	tj, h, err := tierJSON(next)
	if err != nil {
		return m, err
	}
	m.TierSHA256 = h
	vs, err := checkpointVerifiers(dir)
	if err != nil {
		return m, err
	}
	expect := t.PlaneName != ""
	pg, err := openDatabase(ctx, dir, t, *t.LedgerStore, actor)
	if err != nil {
		return m, err
	}
	defer pg.Close()
	rd, err := openDatabase(ctx, dir, t, *t.LedgerStore, actor) // reads while pg holds the head row
	if err != nil {
		return m, err
	}
	defer rd.Close()
	what := "ledger " + t.LedgerStore.Name + " in the database"

	moved, err := pg.Moved(ctx)
	if err != nil {
		return m, err
	}
	if moved == StoreFile {
		// Step 5 was done. Finish if the file holds the database's
		// ledger, this very move at its end.
		rec, err := lastMigration(ctx, rd)
		if err != nil {
			return m, err
		}
		if !records(rec, m, h) {
			return m, refuse("LEDGER_INVALID", "%s was moved out, not by a move to %s: nothing to finish", what, path)
		}
		f, err := ledger.OpenFileStore(path)
		if err != nil {
			return m, err
		}
		defer f.Close()
		if err := sameLedger(ctx, f, rd, path, what); err != nil {
			return m, err
		}
		rep, err := verified(ctx, f, path, ledger.VerifyOptions{Verifiers: vs, Expect: expect})
		if err != nil {
			return m, err
		}
		m.Resumed = true
		return finish(dir, tj, m, rep, rec.Seq)
	} else if moved != "" {
		return m, refuse("MIGRATE_REFUSED", "%s was moved to the %s store", what, moved)
	}

	// 1. Checks: the database verifies; the file is absent, or the copy
	// an earlier run left (a prefix of the database's ledger).
	if _, err := verified(ctx, rd, what, ledger.VerifyOptions{Verifiers: vs, Expect: expect}); err != nil {
		return m, err
	}
	if err := leftover(ctx, path, rd, what); err != nil {
		return m, err
	}
	// 2. The record.
	es, err := pg.Append(ctx, []ledger.Draft{migrated(t, m, h)})
	if err != nil {
		return m, err
	}
	m.Seq = es[0].Seq
	if err := stop(2); err != nil {
		return m, err
	}
	var rep ledger.Report
	// 3.-5. The head row held; the copy; the database closed on commit.
	err = pg.MoveOut(ctx, StoreFile, func(st ledger.State) error {
		if _, err := verified(ctx, rd, what, ledger.VerifyOptions{Verifiers: vs, Expect: expect}); err != nil {
			return err
		}
		held, err := rd.ReadCheckpoint()
		if err != nil {
			return err
		}
		if err := stop(3); err != nil {
			return err
		}
		if err := leftover(ctx, path, rd, what); err != nil {
			return err
		}
		ex, err := ledger.ExportFile(ctx, rd, path)
		if err != nil {
			return err
		}
		if ex.State.Size != st.Size || ex.State.Root != st.Root {
			return refuse("INTERNAL", "the copy of %s has %d entries, the ledger held %d", what, ex.State.Size, st.Size)
		}
		// The file's own signed checkpoint, then the file verified with it,
		// held to the database's.
		opts, err := ledgerOptions(dir, next, path, actor)
		if err != nil {
			return err
		}
		w, err := ledger.OpenWriter(path, opts)
		if err != nil {
			return err
		}
		defer w.Close()
		if opts.Checkpoint != nil {
			if _, _, err := w.Checkpoint(ctx, opts.Checkpoint.Origin); err != nil {
				return err
			}
		}
		vo := ledger.VerifyOptions{Verifiers: vs, Expect: expect}
		if held != nil {
			vo.Held = [][]byte{held}
		}
		if rep, err = verified(ctx, w, path, vo); err != nil {
			return err
		}
		return stop(4)
	})
	if err != nil {
		return m, err
	}
	// The database's checkpoint kept outside it is the file's own when
	// they share the name; else it goes, with its lock.
	if ck := PostgresCheckpointPath(dir, t); ck != ckPath(path) {
		os.Remove(ck)
	}
	os.Remove(PostgresCheckpointPath(dir, t) + ".lock")
	if err := stop(5); err != nil {
		return m, err
	}
	// 6. The switch.
	return finish(dir, tj, m, rep, m.Seq)
}

func ckPath(path string) string {
	_, ck, _ := ledger.SidePaths(path)
	return ck
}

// leftover removes the file ledger at path that an earlier, unfinished
// move to it left (a prefix of the database's ledger, which holds all of
// it: nothing is lost), and refuses any other file there.
func leftover(ctx context.Context, path string, db ledger.Store, what string) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		hashPath, _, _ := ledger.SidePaths(path)
		if _, err := os.Lstat(hashPath); err == nil {
			return refuse("LEDGER_EXISTS", "%s is there without its ledger: remove it after checking it", hashPath)
		}
		return nil
	}
	f, err := ledger.OpenFileStore(path)
	if err != nil {
		return err
	}
	err = prefixOf(ctx, f, db, path, what)
	f.Close()
	if err != nil {
		return refuse("LEDGER_EXISTS", "%s exists and is not an earlier copy of %s: a migration never replaces a ledger (move it away after checking it)", path, what)
	}
	hashPath, _, _ := ledger.SidePaths(path)
	for _, p := range []string{path, hashPath, ledger.IndexPath(path)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// sameLedger refuses a and b unless they hold the same tree.
func sameLedger(ctx context.Context, a, b ledger.Store, aw, bw string) error {
	as, err := a.State(ctx)
	if err != nil {
		return err
	}
	bs, err := b.State(ctx)
	if err != nil {
		return err
	}
	if as.Size != bs.Size || as.Root != bs.Root {
		return refuse("LEDGER_INVALID", "%s (%d entries, root %s) is not %s (%d entries, root %s)", aw, as.Size, hex.EncodeToString(as.Root[:]), bw, bs.Size, hex.EncodeToString(bs.Root[:]))
	}
	return nil
}
