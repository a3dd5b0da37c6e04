package install

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/control-plane/cp/internal/plane"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/pkg/ledger"
)

// Summary describes one checkpoint.
type Summary struct {
	VersionID string             `json:"version_id"`
	Label     string             `json:"label"`
	CreatedAt string             `json:"created_at"`
	Actor     string             `json:"actor"`
	Files     int                `json:"files"`
	Packages  []snapshot.Package `json:"packages"`
}

func summarize(v *snapshot.Version) Summary {
	return Summary{VersionID: v.VersionID, Label: v.Label, CreatedAt: v.CreatedAt, Actor: v.Actor, Files: len(v.Files), Packages: v.Packages}
}

// Checkpoint records the plane's installed state as a new version (see
// package snapshot) under the registry lock, after recovering any
// interrupted change, and records CHECKPOINT_CREATED (the entry returned).
func Checkpoint(ctx context.Context, root, label string, actor plane.Actor, now time.Time) (*Summary, ledger.Entry, error) {
	if err := checkHO3(root); err != nil {
		return nil, ledger.Entry{}, err
	}
	lock, err := registry.Acquire(ctx, root)
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	defer lock.Release()
	if _, err := recoverLocked(ctx, root, actor); err != nil {
		return nil, ledger.Entry{}, err
	}
	v, err := snapshot.Take(root, snapshot.Options{Label: label, Actor: actor.Name, Now: now})
	if err != nil {
		return nil, ledger.Entry{}, err
	}
	rec := &recorder{root: root, actor: actor.Name, authOff: actor.AuthOff, opID: newOpID()}
	m := map[string]any{"op_id": rec.opID, "actor": actor.Name, "version_id": v.VersionID, "label": label, "files": len(v.Files), "automatic": false,
		"sha256": v.FileSHA256()}
	e, err := rec.record(ctx, ledger.Draft{EventType: "CHECKPOINT_CREATED", SubmissionID: v.VersionID, Decision: "CREATED", Reason: label, Metadata: m})
	s := summarize(v)
	return &s, e, err
}

// Versions lists the plane's checkpoints, oldest first.
func Versions(root string) ([]Summary, error) {
	if err := checkHO3(root); err != nil {
		return nil, err
	}
	vs, err := snapshot.List(root)
	if err != nil {
		return nil, err
	}
	out := make([]Summary, 0, len(vs))
	for _, v := range vs {
		out = append(out, summarize(v))
	}
	return out, nil
}

// RollbackResult is what a rollback did, and the integrity check after it.
type RollbackResult struct {
	VersionID  string             `json:"version_id"`
	Label      string             `json:"label"`
	Checkpoint string             `json:"checkpoint"` // the state before, checkpointed first
	Restored   []string           `json:"restored"`
	Removed    []string           `json:"removed"`
	Unchanged  int                `json:"unchanged"`
	Packages   []snapshot.Package `json:"packages"`
	Integrity  Integrity          `json:"integrity"`
	// WorkOrder is G2's verdict on the rollback's diff, when a work order
	// was given or required.
	WorkOrder *gate.Result `json:"work_order,omitempty"`
	// LedgerEntryID and LedgerSeq name the ROLLED_BACK entry.
	LedgerEntryID string `json:"-"`
	LedgerSeq     int64  `json:"-"`
	// changed is Restored split into the files added and those modified,
	// and Removed: the ROLLED_BACK entry's metadata.changed.
	changed ledger.Changed
}

// Integrity is the health sweep run after a rollback.
type Integrity struct {
	AllPassed bool          `json:"all_passed"`
	Results   []gate.Result `json:"results"`
}

// Rollback restores the plane at root to checkpoint id exactly: every file
// in the checkpoint's scope gets its recorded bytes and mode back, and every
// file in today's scope that the checkpoint lacks is removed (receipts and
// registries included), as one journaled change. The current state is
// checkpointed first, so a rollback can itself be undone. ROLLBACK_STARTED
// and ROLLED_BACK are recorded; then the integrity checks run. A plane that
// fails them after the rollback is INTEGRITY_FAILED (a refusal), with the
// rollback's result attached: the rollback happened, the plane is not
// sound. A rollback to the state the plane already holds writes nothing (no
// checkpoint, no ledger entry; result.checkpoint is empty) and still runs
// the integrity checks.
//
// wo is the work order the rollback is done under, or "": G2 judges it
// (every path the rollback restores or removes inside its scope.paths:
// registries and receipts are files it restores too) before anything is
// written, and config/governance.json work_orders: required makes it
// mandatory. A refusal is recorded as ROLLBACK_FAILED.
//
// log, if not nil, is told each phase and how long it took (cp-install -v).
func Rollback(ctx context.Context, root, id, wo string, actor plane.Actor, now time.Time, log func(format string, args ...any)) (*RollbackResult, error) {
	if err := checkHO3(root); err != nil {
		return nil, err
	}
	rec := &recorder{root: root, actor: actor.Name, authOff: actor.AuthOff, opID: newOpID(), workOrder: wo}
	lock, err := registry.Acquire(ctx, root)
	if err != nil {
		return nil, rec.refused(err, rec.rollbackFailed(ctx, id, err))
	}
	defer lock.Release()
	if _, err := recoverLocked(ctx, root, actor); err != nil {
		return nil, rec.refused(err, rec.rollbackFailed(ctx, id, err))
	}
	rec.log = log
	res, err := rollback(ctx, root, id, now, rec)
	if err != nil && !rec.outcome {
		if pending, _ := journalPending(root); !pending { // else the journal owns the outcome
			return nil, rec.refused(err, rec.rollbackFailed(ctx, id, err))
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	res.LedgerEntryID, res.LedgerSeq = rec.last.ID, rec.last.Seq // ROLLED_BACK
	pruneEmpty(root, res.Removed)
	done := Options{Log: log}.phase()
	results, err := gate.Integrity(ctx, root, "ho3")
	done("integrity sweep")
	if err != nil {
		return res, err
	}
	res.Integrity = Integrity{AllPassed: true, Results: results}
	for _, r := range results {
		if !r.Passed {
			res.Integrity.AllPassed = false
			e := refuse("INTEGRITY_FAILED", "rolled back to %s, but the plane fails %s: %s", id, r.Gate, r.Message)
			e.Result = res
			return res, e
		}
	}
	return res, nil
}

// rollback plans, checkpoints and applies a rollback under the lock.
func rollback(ctx context.Context, root, id string, now time.Time, rec *recorder) (*RollbackResult, error) {
	actor := rec.actor
	v, err := snapshot.Load(root, id)
	if err != nil {
		return nil, err
	}
	if err := checkpointRecorded(ctx, root, v); err != nil {
		return nil, err
	}
	if err := kernelKept(root, v); err != nil {
		return nil, err
	}
	res := &RollbackResult{VersionID: v.VersionID, Label: v.Label, Restored: []string{}, Removed: []string{}, Packages: v.Packages}
	stage, cleanup, err := privateDir(root)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	done := Options{Log: rec.log}.phase()
	known := map[string]snapshot.Stat{} // the state now, hashed once for the plan and the checkpoint
	changes, err := restorePlan(root, v, stage, res, known)
	if err != nil {
		return nil, err
	}
	if err := rollbackG2(ctx, root, rec.workOrder, res, len(changes) == 0); err != nil {
		return nil, err
	}
	if len(changes) == 0 {
		// The plane already holds the checkpoint's state. Nothing changes,
		// so nothing is written: no checkpoint of the state left, no ledger
		// entry (as an install of what is installed writes nothing).
		done("the plane already holds %s: nothing to restore or remove (%d unchanged)", v.VersionID, res.Unchanged)
		return res, nil
	}
	if err := rec.intend(ctx, stage, opMeta{Op: "rollback", OpID: rec.opID, Actor: actor, WorkOrder: rec.workOrder, VersionID: v.VersionID}); err != nil {
		return nil, err
	}

	done("planned and staged from the checkpoint: %d to restore, %d to remove, %d unchanged", len(res.Restored), len(res.Removed), res.Unchanged)
	done = Options{Log: rec.log}.phase()
	// The files this rollback replaces or removes leave the plane when it
	// commits: their inodes can be the checkpoint's blobs, uncopied.
	displaced := make(map[string]bool, len(changes))
	for _, c := range changes {
		displaced[c.Path] = true
	}
	before, err := snapshot.Take(root, snapshot.Options{Label: "auto: before rollback to " + v.VersionID, Actor: actor, Now: now,
		Known: known, Displaced: func(p string) bool { return displaced[p] }})
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			if pending, _ := journalPending(root); !pending {
				snapshot.Forget(root, before) // the displaced files stay: no history may share their inodes
			}
		}
	}()
	res.Checkpoint = before.VersionID
	// Recovery must know the checkpoint to detach its links if this
	// rollback never commits.
	if err := rec.intend(ctx, stage, opMeta{Op: "rollback", OpID: rec.opID, Actor: actor, WorkOrder: rec.workOrder, VersionID: v.VersionID, Checkpoint: before.VersionID}); err != nil {
		return nil, err
	}
	if err := rec.checkpoint(ctx, before, true); err != nil {
		return nil, err
	}
	_, err = rec.record(ctx, ledger.Draft{EventType: "ROLLBACK_STARTED", SubmissionID: v.VersionID, Decision: "STARTED",
		Reason: "rollback to " + v.VersionID + " (" + v.Label + ")", Metadata: withWO(map[string]any{"op_id": rec.opID, "actor": actor,
			"version_id": v.VersionID, "checkpoint": before.VersionID, "restore": len(res.Restored), "remove": len(res.Removed)}, rec.workOrder)})
	if err != nil {
		return nil, err
	}
	meta, err := json.Marshal(opMeta{Op: "rollback", OpID: rec.opID, Actor: actor, WorkOrder: rec.workOrder, VersionID: v.VersionID, Checkpoint: before.VersionID,
		LedgerEntries: rec.ledgerEntries, Changed: &res.changed})
	if err != nil {
		return nil, err
	}
	done("checkpoint %s of the state left: %d files", before.VersionID, len(before.Files))
	done = Options{Log: rec.log}.phase()
	defer func() { done("journaled apply: %d changes", len(changes)) }()
	err = apply(root, changes, journal.Options{Meta: meta, Committed: func() error {
		committed = true
		err := rec.rolledBack(ctx, v.VersionID, before.VersionID, &res.changed, false)
		rec.outcome = err == nil
		return err
	}})
	return res, err
}

// restorePlan compares the checkpoint with the disk and returns the
// journal changes that restore it, staging every blob needed (hash-checked)
// under stage first: a missing or altered blob refuses the rollback before
// anything changes.
func restorePlan(root string, v *snapshot.Version, stage string, res *RollbackResult, known map[string]snapshot.Stat) ([]journal.Change, error) {
	now, err := snapshot.Scope(root)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(v.Files))
	paths := make([]string, 0, len(v.Files)+len(now))
	for _, f := range v.Files {
		want[f.Path] = true
		paths = append(paths, f.Path)
	}
	for _, p := range now {
		if !want[p] {
			paths = append(paths, p)
		}
	}
	stats, err := snapshot.StatAll(root, paths)
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		known[p] = stats[i]
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var changes []journal.Change
	var blobs []snapshot.File
	var dsts []string
	var kept []string // files left as they are
	ownersAt := -1    // file_ownership.csv's change, if it is restored
	for i, f := range v.Files {
		if st := stats[i]; st.Exists && st.File.SHA256 == f.SHA256 && st.File.Mode == f.Mode {
			res.Unchanged++
			kept = append(kept, f.Path)
			continue
		}
		if f.Path == ownershipFile {
			ownersAt = len(changes)
		}
		mode, err := snapshot.ParseMode(f.Mode)
		if err != nil {
			return nil, err
		}
		src := stage + "/" + strconv.Itoa(i)
		blobs, dsts = append(blobs, f), append(dsts, src)
		changes = append(changes, journal.Change{Path: f.Path, Src: src, Mode: mode})
		res.Restored = append(res.Restored, f.Path)
		if stats[i].Exists {
			res.changed.Modified = append(res.changed.Modified, f.Path)
		} else {
			res.changed.Added = append(res.changed.Added, f.Path)
		}
	}
	if err := snapshot.CopyObjects(r, blobs, dsts); err != nil {
		return nil, err
	}
	if ownersAt >= 0 {
		// A file the rollback leaves as it is may still change hands:
		// the checkpoint's owner is not today's (another package installed
		// the same bytes since). Its provenance changes, so the rollback's
		// changed set lists it (cp-trace file finds the rollback by it).
		moved, err := reowned(r, changes[ownersAt].Src, kept)
		if err != nil {
			return nil, err
		}
		res.changed.Modified = append(res.changed.Modified, moved...)
	}
	for i := len(v.Files); i < len(paths); i++ {
		if stats[i].Exists {
			changes = append(changes, journal.Change{Path: paths[i], Remove: true})
			res.Removed = append(res.Removed, paths[i])
			res.changed.Removed = append(res.changed.Removed, paths[i])
		}
	}
	for _, l := range []*[]string{&res.changed.Added, &res.changed.Modified, &res.changed.Removed} {
		slices.Sort(*l)
	}
	return changes, nil
}

// ownershipFile is HO3's file_ownership.csv, plane-relative, as a
// checkpoint lists it.
const ownershipFile = registry.Dir + "/file_ownership.csv"

// reowned returns the paths among kept whose owner in the checkpoint's
// file_ownership.csv (staged at src, hash-checked) is not their owner in
// today's.
func reowned(r *os.Root, src string, kept []string) ([]string, error) {
	owners := func(name string) (map[string]string, error) {
		b, err := r.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil // no owners (snapshot.Scope has read today's already)
		} else if err != nil {
			return nil, err
		}
		rows, err := registry.Decode(registry.Ownership, b)
		if err != nil {
			return nil, err
		}
		m := make(map[string]string, len(rows))
		for _, row := range rows {
			m[row["path"]] = row["package_id"]
		}
		return m, nil
	}
	then, err := owners(src)
	if err != nil {
		return nil, err
	}
	now, err := owners(ownershipFile)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range kept {
		if o, ok := then[p]; ok && o != now[p] {
			out = append(out, p)
		}
	}
	return out, nil
}

func (r *recorder) rolledBack(ctx context.Context, versionID, checkpoint string, changed *ledger.Changed, recovered bool) error {
	m := map[string]any{"op_id": r.opID, "actor": r.actor, "version_id": versionID, "checkpoint": checkpoint}
	if changed != nil {
		m[ledger.ChangedKey] = changed.Metadata()
	}
	withWO(m, r.workOrder)
	if recovered {
		m["recovered"] = true
	}
	_, err := r.record(ctx, ledger.Draft{EventType: "ROLLED_BACK", SubmissionID: versionID, Decision: "ROLLED_BACK",
		Reason: "plane restored to " + versionID, Metadata: m})
	return err
}

func (r *recorder) rollbackFailed(ctx context.Context, versionID string, cause error) error {
	m := map[string]any{"op_id": r.opID, "actor": r.actor, "version_id": versionID}
	withWO(m, r.workOrder)
	var coded interface{ Code() string }
	if errors.As(cause, &coded) {
		m["code"] = coded.Code()
	}
	_, err := r.record(ctx, ledger.Draft{EventType: "ROLLBACK_FAILED", SubmissionID: versionID, Decision: "FAILED",
		Reason: relative(r.root, cause.Error()), Metadata: m})
	return err
}

// withWO adds work_order_id to a ledger entry's metadata m when the
// operation has one.
func withWO(m map[string]any, wo string) map[string]any {
	if wo != "" {
		m["work_order_id"] = wo
	}
	return m
}

// rollbackG2 runs G2 on the rollback res plans under work order wo: every
// path it restores or removes must be inside the work order's scope. noop:
// the plane already holds the checkpoint (a replay G2 allows after
// WO_COMPLETED). A failure is a refusal with the code of G2's first error,
// and G2's result.
func rollbackG2(ctx context.Context, root, wo string, res *RollbackResult, noop bool) error {
	gov, _, err := config.Governance(root)
	if err != nil {
		return err
	}
	a := gate.WOAction{WorkOrder: wo, Required: gov.WorkOrdersRequired(), Paths: slices.Concat(res.Restored, res.Removed), Replay: noop,
		ReplayOf: gate.ReplayRecord{EventType: "ROLLED_BACK", Subject: res.VersionID}}
	r, _, err := gate.G2(ctx, root, a)
	if err != nil {
		return err
	}
	if wo != "" || a.Required {
		res.WorkOrder = r
	}
	if r.Passed {
		return nil
	}
	f := r.Errors[0]
	e := refuse(f.Code, "G2: %s %s: %s", f.Code, f.Path, f.Message)
	e.Details = map[string]any{"gate": "G2", "path": f.Path}
	e.Result = res
	return e
}
