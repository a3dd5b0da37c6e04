package install

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/pkg/ledger"
)

// recorder writes one operation's events to HO3's ledger.
type recorder struct {
	root, actor, opID, workOrder, archive string
	authOff                               bool         // stamp metadata._auth "off" (plane.Actor)
	archivePath                           string       // as given: kept out of recorded messages
	pkg                                   *Result      // set once the manifest is read
	started                               bool         // INSTALL_STARTED is in the ledger
	applying                              bool         // the journal owns the outcome from here
	outcome                               bool         // the outcome event is in the ledger
	last                                  ledger.Entry // the entry this operation recorded last
	ledgerEntries                         int64        // HO3's ledger size (entries) before the operation recorded anything
	sized                                 bool         // ledgerEntries is set
	log                                   func(format string, args ...any)
	trust                                 *TrustChange // a trust change's TRUST_CHANGED, recorded with INSTALLED
	weakened                              []string     // controls the operation went without (G3), recorded on its events
	changedUnknown                        bool         // a recovered outcome whose journal did not say what changed
}

// intentFile, in an operation's private directory under _staging/, says
// what the operation is before it records anything: if the process dies
// before its journal holds the same, Recover finds the operation there.
const intentFile = "op.json"

// intend notes HO3's ledger size and writes the operation's intent (m,
// with that size) durably into dir, its private directory under _staging/.
func (r *recorder) intend(ctx context.Context, dir string, m opMeta) error {
	if !r.sized { // a second intent of the same operation keeps the first size
		n, err := ledgerEntries(ctx, r.root)
		if err != nil {
			return err
		}
		r.ledgerEntries, r.sized = n, true
	}
	m.LedgerEntries = r.ledgerEntries
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(r.root, filepath.FromSlash(dir), intentFile), b, 0o600)
}

func newOpID() string { return "OP-" + randHex() }

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// meta returns the metadata every event of the operation carries.
func (r *recorder) meta() map[string]any {
	m := map[string]any{"op_id": r.opID, "actor": r.actor}
	if r.workOrder != "" {
		m["work_order_id"], m["_work_order_id"] = r.workOrder, r.workOrder
	}
	if r.archive != "" {
		m["archive"] = r.archive
	}
	if len(r.weakened) > 0 {
		m["weakened_controls"] = r.weakened
	}
	if p := r.pkg; p != nil {
		m["package_id"], m["version"], m["manifest_hash"], m["archive_sha256"] = p.PackageID, p.Version, p.ManifestHash, p.ArchiveSHA256
		if p.PreviousVersion != "" {
			m["previous_version"] = p.PreviousVersion
		}
	}
	return m
}

func (r *recorder) record(ctx context.Context, d ...ledger.Draft) (ledger.Entry, error) {
	e, err := plane.Record(ctx, r.root, plane.Actor{Name: r.actor, AuthOff: r.authOff}, d...)
	if err == nil {
		r.last = e
	}
	return e, err
}

// Recorded is a refusal together with the ledger entry that records it
// (INSTALL_FAILED, ROLLBACK_FAILED): cp-install's answer cites that entry
// in its evidence (ledger_entry_id, seq). It unwraps to the refusal.
type Recorded struct {
	Err   error
	Entry ledger.Entry
}

func (e *Recorded) Error() string { return e.Err.Error() }
func (e *Recorded) Unwrap() error { return e.Err }

// RecordedAs gives the recording entry's id and seq.
func (e *Recorded) RecordedAs() (string, int64) { return e.Entry.ID, e.Entry.Seq }

// refused returns err as recorded by the entry r wrote last, or, when
// recording it failed (rerr), both errors.
func (r *recorder) refused(err, rerr error) error {
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	return &Recorded{Err: err, Entry: r.last}
}

func (r *recorder) subject() string {
	if r.pkg != nil {
		return r.pkg.PackageID
	}
	return r.archive
}

func (r *recorder) start(ctx context.Context) error {
	_, err := r.record(ctx, ledger.Draft{EventType: "INSTALL_STARTED", SubmissionID: r.subject(), Decision: "STARTED",
		Reason: r.pkg.Action + " " + r.pkg.PackageID + " " + r.pkg.Version, Metadata: r.meta()})
	r.started = err == nil
	return err
}

// failed records INSTALL_FAILED with the reason. (Once a journal holds
// the change, the outcome is the journal's: Install does not call failed,
// Recover records it.)
func (r *recorder) failed(ctx context.Context, cause error) error {
	m := r.meta()
	var coded interface{ Code() string }
	if errors.As(cause, &coded) {
		m["code"] = coded.Code()
	}
	reason := cause.Error()
	if r.archivePath != "" {
		reason = strings.ReplaceAll(reason, r.archivePath, r.archive)
	}
	_, err := r.record(ctx, ledger.Draft{EventType: "INSTALL_FAILED", SubmissionID: r.subject(), Decision: "FAILED",
		Reason: relative(r.root, reason), Metadata: m})
	return err
}

// installed records INSTALLED (and, for a trust change, TRUST_CHANGED
// after it, in the same append); recovered marks an outcome recorded by
// Recover after a crash.
func (r *recorder) installed(ctx context.Context, res *Result, recovered bool) (ledger.Entry, error) {
	d := r.installedDraft(res, recovered)
	if r.trust == nil {
		return r.record(ctx, d)
	}
	return r.record(ctx, d, r.trust.draft(r.opID, r.actor, recovered))
}

func (r *recorder) installedDraft(res *Result, recovered bool) ledger.Draft {
	m := r.meta()
	m["action"], m["checkpoint"], m["signature"] = res.Action, res.Checkpoint, res.Signature
	m["files"] = len(res.Added) + len(res.Replaced) + res.Unchanged
	m["removed"] = len(res.Removed)
	if recovered {
		m["recovered"] = true
	}
	switch {
	case res.Signature == "waived" && res.PackageID == plane.KernelID:
		m["weakened_control"] = "G5 waived: the kernel release is built by cp-install itself, not signed"
		m["tiers"] = []any{"ho3", "ho2", "ho1"}
	case res.Signature == "waived":
		m["weakened_control"] = "G5 waived: unsigned package allowed by CONTROL_PLANE_ALLOW_UNSIGNED=1"
	}
	if len(res.DriftOverwritten) > 0 {
		m["drift_overwritten"] = res.DriftOverwritten
	}
	if len(res.PromptPacks) > 0 {
		packs := make([]any, len(res.PromptPacks))
		for i, p := range res.PromptPacks {
			packs[i] = map[string]any{"prompt_pack_id": p.ID, "version": p.Version, "sha256": p.SHA256}
		}
		m["prompt_packs"] = packs
	}
	if !r.changedUnknown {
		m[ledger.ChangedKey] = res.changed().Metadata()
	}
	return ledger.Draft{EventType: "INSTALLED", SubmissionID: res.PackageID, Decision: "INSTALLED",
		Reason: res.Action + " " + res.PackageID + " " + res.Version, Metadata: m}
}

// checkpoint records CHECKPOINT_CREATED; auto marks one taken before an
// install or rollback.
func (r *recorder) checkpoint(ctx context.Context, v *snapshot.Version, auto bool) error {
	m := map[string]any{"op_id": r.opID, "actor": r.actor, "version_id": v.VersionID, "label": v.Label, "files": len(v.Files), "automatic": auto,
		"sha256": v.FileSHA256()}
	_, err := r.record(ctx, ledger.Draft{EventType: "CHECKPOINT_CREATED", SubmissionID: v.VersionID, Decision: "CREATED", Reason: v.Label, Metadata: m})
	return err
}

// checkpointRecorded refuses (VERSION_UNRECORDED) a checkpoint whose file
// is not the one HO3's ledger recorded when it was made: a checkpoint file
// edited since, or one the ledger never saw, is not restored from.
func checkpointRecorded(ctx context.Context, root string, v *snapshot.Version) error {
	l, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
	if err != nil {
		return err
	}
	defer l.Close()
	recorded := ""
	err = l.Find(ctx, ledger.Query{EventTypes: []string{"CHECKPOINT_CREATED"}, Subject: v.VersionID}, func(e *ledger.Entry) bool {
		recorded, _ = e.Metadata["sha256"].(string)
		return true
	})
	if err != nil {
		return err
	}
	switch recorded {
	case v.FileSHA256():
		return nil
	case "":
		return refuse("VERSION_UNRECORDED", "%s: no CHECKPOINT_CREATED entry in the ledger records this checkpoint file's hash", v.VersionID)
	}
	return refuse("VERSION_UNRECORDED", "%s: the checkpoint file hashes to %s; the ledger recorded %s when it was made", v.VersionID, v.FileSHA256(), recorded)
}

// relative strips the plane root from a message: no absolute path is
// written to a ledger.
func relative(root, msg string) string {
	if abs, err := filepath.Abs(root); err == nil {
		msg = strings.ReplaceAll(msg, abs+string(filepath.Separator), "")
	}
	return strings.ReplaceAll(msg, root+string(filepath.Separator), "")
}

// Recovered is what Recover did.
type Recovered struct {
	journal.Outcome
	Op      string `json:"op,omitempty"`    // install or rollback
	OpID    string `json:"op_id,omitempty"` // the interrupted operation
	Staging int    `json:"staging_removed"` // abandoned extraction directories removed
}

// Recover finishes or undoes an interrupted install or rollback of the
// plane at root under its registry lock, records the operation's outcome
// in the ledger if it is not there yet, and removes abandoned extraction
// directories; then it brings HO3's ledger in step. Every mutating command
// runs the first part first (and its own append then repairs the ledger).
func Recover(ctx context.Context, root string, actor plane.Actor) (*Recovered, error) {
	if err := checkHO3(root); err != nil {
		return nil, err
	}
	lock, err := registry.Acquire(ctx, root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	rec, err := recoverLocked(ctx, root, actor)
	if err != nil {
		return rec, err
	}
	// An append killed between its line and its stored hashes (before the
	// operation recorded its start, say: its automatic checkpoint's entry;
	// or a work-order step's, whose anchors append to HO2, HO3 and a
	// session) leaves no outcome to record, and the ledger out of step
	// until its next append: verify reports TLOG_MISSING meanwhile. An
	// empty append repairs it now, as any append would, and checks the
	// stored checkpoint: HO3's ledger, then HO2's and HO1's, then every
	// session's.
	if err := plane.CheckRecord(ctx, root, actor); err != nil {
		return rec, err
	}
	return rec, inStep(ctx, root, actor)
}

// inStep brings the lower tiers' ledgers and every session ledger in step
// with an empty append each. A tier a plane does not have (an old
// bootstrap) is skipped; any other failure is reported, naming the ledger.
func inStep(ctx context.Context, root string, actor plane.Actor) error {
	step := func(s ledger.Store, what string) error {
		defer s.Close()
		if _, err := s.Append(ctx, nil); err != nil {
			return fmt.Errorf("bringing %s in step: %w", what, err)
		}
		return nil
	}
	var errs []error
	for _, id := range []string{"ho2", "ho1"} {
		dir, err := plane.Dir(root, id)
		if err == nil {
			_, err = os.Lstat(filepath.Join(dir, "tier.json"))
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, _, err := plane.OpenLedger(dir, plane.ForAppend, actor)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, step(s, id+"'s ledger"))
	}
	sessions, err := os.ReadDir(plane.SessionsDir(root))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, d := range sessions {
		if !d.IsDir() || !plane.ValidSessionID(d.Name()) {
			continue
		}
		s, _, err := plane.OpenSessionLedger(root, d.Name(), plane.ForAppend, actor)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, step(s, "session "+d.Name()+"'s ledger"))
	}
	return errors.Join(errs...)
}

func recoverLocked(ctx context.Context, root string, actor plane.Actor) (*Recovered, error) {
	rec := &Recovered{}
	out, err := journal.Recover(root, func(o journal.Outcome) error {
		var m opMeta
		if o.Meta == nil {
			return nil // nothing is known of the operation: nothing to record
		}
		if err := json.Unmarshal(o.Meta, &m); err != nil {
			return &Error{code: "JOURNAL_CORRUPT", Msg: "journal meta.json: " + err.Error()}
		}
		rec.Op, rec.OpID = m.Op, m.OpID
		_, err := recordRecovered(ctx, root, actor, m, o)
		return err
	})
	rec.Outcome = out
	if err != nil {
		return rec, err
	}
	rec.Staging, err = removeStaging(root, func(m opMeta) error {
		if rec.OpID == "" {
			rec.Op, rec.OpID = m.Op, m.OpID
		}
		outcome, err := recordRecovered(ctx, root, actor, m, journal.Outcome{Found: true, RolledBack: true})
		if failedEvents[outcome] && !rec.Found {
			// Known only from its private directory, and it never took
			// effect. (One that did had recorded its outcome already: its
			// directory is only tidied away.)
			rec.Found, rec.RolledBack = true, true
		}
		return err
	})
	return rec, err
}

// recordRecovered records the outcome of an interrupted operation, once:
// if the ledger already holds it (the crash came after it was written),
// nothing is appended, and an operation that had not recorded its start
// gets no outcome either.
//
// It returns the operation's outcome event as the ledger now holds it, or
// "" when it has none.
func recordRecovered(ctx context.Context, root string, actor plane.Actor, m opMeta, o journal.Outcome) (string, error) {
	if m.Op == "rollback" && !o.RolledForward {
		// Its checkpoint may hold links to files that stay in the plane;
		// one cut short before its id was known, or before its file was
		// written, may have linked blobs already (Detach finds them).
		if err := snapshot.Detach(root, m.Checkpoint); err != nil {
			return "", err
		}
	}
	seen := map[string]bool{}
	started, outcome, err := outcomeRecorded(ctx, root, m.OpID, m.LedgerEntries, seen)
	r := &recorder{root: root, actor: m.Actor, authOff: actor.AuthOff, opID: m.OpID, workOrder: m.WorkOrder, trust: m.Trust, weakened: m.Weakened}
	if r.actor == "" {
		r.actor = actor.Name
	}
	if err == nil && outcome == "INSTALLED" && m.Trust != nil && !seen["TRUST_CHANGED"] {
		// The crash cut the append after INSTALLED: its TRUST_CHANGED is owed.
		_, err = r.record(ctx, m.Trust.draft(m.OpID, r.actor, true))
		return outcome, err
	}
	if err != nil || outcome != "" || !started {
		return outcome, err
	}
	switch m.Op {
	case "install":
		r.pkg = &Result{PackageID: m.PackageID, Version: m.Version, ManifestHash: m.ManifestHash, ArchiveSHA256: m.ArchiveSHA256,
			PreviousVersion: m.PreviousVersion, Action: m.Action, Checkpoint: m.Checkpoint, Signature: m.Signature, DriftOverwritten: m.Drift}
		if m.Changed != nil {
			r.pkg.Added, r.pkg.Replaced, r.pkg.Removed = m.Changed.Added, m.Changed.Modified, m.Changed.Removed
		} else {
			// A journal an earlier release wrote: the entry says nothing
			// of what changed, and cp-trace judges it by its checkpoints.
			r.changedUnknown = true
		}
		if o.RolledForward {
			_, err := r.installed(ctx, r.pkg, true)
			return "INSTALLED", err
		}
		return "INSTALL_FAILED", r.failed(ctx, errors.New("interrupted before it took effect; recovery rolled it back, the plane is as before"))
	case "rollback":
		if o.RolledForward {
			return "ROLLED_BACK", r.rolledBack(ctx, m.VersionID, m.Checkpoint, m.Changed, true)
		}

		return "ROLLBACK_FAILED", r.rollbackFailed(ctx, m.VersionID, errors.New("interrupted before it took effect; recovery rolled it back, the plane is as before"))
	}
	return "", &Error{code: "JOURNAL_CORRUPT", Msg: "journal meta.json: unknown op " + m.Op}
}

// failedEvents are the outcomes of operations that did not take effect.
var failedEvents = map[string]bool{"INSTALL_FAILED": true, "ROLLBACK_FAILED": true}

// outcomeEvents end an operation.
var outcomeEvents = map[string]bool{"INSTALLED": true, "INSTALL_FAILED": true, "ROLLED_BACK": true, "ROLLBACK_FAILED": true}

// outcomeRecorded reports whether HO3's ledger holds the start of
// operation opID, and its outcome event ("" if none), looking at the
// entries from seq since (the ledger's size before the operation) only.
// An operation starts once: events of the operation before its last start
// event do not count. Every event type of the operation from that start on
// is added to seen.
func outcomeRecorded(ctx context.Context, root, opID string, since int64, seen map[string]bool) (started bool, outcome string, err error) {
	l, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
	if err != nil {
		return false, "", err
	}
	defer l.Close()
	found := map[string]bool{}
	err = l.Find(ctx, ledger.Query{OpID: opID, From: max(since, 0)}, func(e *ledger.Entry) bool {
		if strings.HasSuffix(e.EventType, "_STARTED") {
			started, outcome = true, ""
			clear(found)
		}
		found[e.EventType] = true
		if outcomeEvents[e.EventType] {
			outcome = e.EventType
		}
		return true
	})
	if err != nil {
		return false, "", err
	}
	if seen != nil {
		maps.Copy(seen, found)
	}
	return started, outcome, nil
}

// ledgerEntries returns the number of entries in HO3's ledger of the plane at
// root: the events an operation records from now on have seq at least
// this (a torn tail after them is cut by the next append).
func ledgerEntries(ctx context.Context, root string) (int64, error) {
	l, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
	if err != nil {
		return 0, err
	}
	defer l.Close()
	st, err := l.State(ctx)
	return st.Size, err
}

// removeStaging removes the private directories that crashed operations
// left under _staging/, first handing each one's intent (op.json, when it
// was written) to interrupted. The caller holds the lock, so none is in use.
func removeStaging(root string, interrupted func(opMeta) error) (int, error) {
	if err := realStaging(root); err != nil {
		return 0, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	entries, err := os.ReadDir(filepath.Join(root, "_staging"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		dir := "_staging/" + e.Name()
		if b, err := r.ReadFile(dir + "/" + intentFile); err == nil {
			var m opMeta
			if json.Unmarshal(b, &m) == nil && m.OpID != "" {
				if err := interrupted(m); err != nil {
					return n, err
				}
			}
		}
		if err := r.RemoveAll(dir); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
