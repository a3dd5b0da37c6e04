// Package install is cp-install's engine (DESIGN.md §6): it installs and
// upgrades package archives into the HO3 plane, takes checkpoints, rolls
// back to them and recovers interrupted changes, so that a crash at any
// instant leaves the plane wholly before or wholly after a change.
//
// # The order of an install
//
// Every step fails closed; the first refusal ends the install.
//
//  1. the plane's registry lock is taken and any interrupted change is
//     recovered (Recover);
//  2. the archive is extracted, through the reader's safety rules, into a
//     private directory under _staging/ (Scan only, for a dry run);
//  3. the manifest is parsed and checked against its schema;
//  4. the package gates run: G0A, G1, G5, VERSION and OWNERSHIP; a package
//     already installed at this version and manifest hash is a no-op that
//     writes nothing at all (unless Force);
//  5. INSTALL_STARTED is recorded in HO3's ledger; a gate failure is then
//     recorded as INSTALL_FAILED and refused;
//  6. the change is planned against the disk: a target whose bytes differ
//     from what its owner installed (drift), or an unowned file in the way,
//     is refused as HASH_MISMATCH unless Force, which overwrites it and
//     records the paths;
//  7. an automatic checkpoint is taken (package snapshot);
//  8. the files, receipt, installed manifest and the registries
//     (file_ownership.csv, packages_state.csv and, for a prompt_pack
//     package, one prompts_registry.csv row per pack with its digest, see
//     internal/prompt) are written as one journaled change (package
//     journal), and INSTALLED is recorded before the journal is retired.
//
// Files that the previous version held and the new one does not are
// removed. Installed files are 0444, or 0555 for an asset the manifest
// declares executable; receipts record each file's mode and are 0444.
//
// # Ledger events
//
// INSTALL_STARTED, INSTALLED, INSTALL_FAILED, CHECKPOINT_CREATED,
// ROLLBACK_STARTED, ROLLED_BACK and ROLLBACK_FAILED, each in HO3's ledger
// with metadata package_id, version, manifest_hash, archive_sha256 (or
// version_id for checkpoints and rollbacks), actor, work_order_id when given,
// and op_id: one id per operation, which Recover uses to record an
// interrupted operation's outcome exactly once.
package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
)

// Options configure Install.
type Options struct {
	Archive string // the package archive; its signature is Archive+".sig"
	ID      string // the package id the caller expects, or ""
	DryRun  bool   // run every check and report the plan; write nothing
	Force   bool   // re-apply the installed version; overwrite drift
	// WorkOrder is the work order the install is done under, or "": G2
	// and G3 judge it before anything is written (config/governance.json
	// work_orders: required makes it mandatory), and it is recorded.
	WorkOrder string
	Actor     plane.Actor
	Gate      gate.Options
	Now       func() time.Time
	// Log, if set, is told each phase and how long it took (cp-install -v).
	Log func(format string, args ...any)
	// ArchiveSHA256 and ManifestHash, when set, are what an upstream step
	// (cp-pkg stage or sign, piped in) judged: the archive must still
	// hash to them, else HASH_MISMATCH.
	ArchiveSHA256, ManifestHash string
}

// phase returns a function that logs what was done and how long it took
// since phase was called.
func (o Options) phase() func(format string, args ...any) {
	start := time.Now()
	return func(format string, args ...any) {
		if o.Log != nil {
			o.Log("%s: "+format, append([]any{time.Since(start).Round(time.Millisecond)}, args...)...)
		}
	}
}

// Actions an install reports.
const (
	ActionInstall   = "install"   // not installed before
	ActionUpgrade   = "upgrade"   // a higher version replaces a lower one
	ActionReinstall = "reinstall" // the installed version re-applied (Force)
	ActionDowngrade = "downgrade" // a lower version: always refused
	ActionNone      = "none"      // already installed: nothing was written
)

// Result is what an install did, or (DryRun) would do.
type Result struct {
	PackageID        string        `json:"package_id"`
	Version          string        `json:"version"`
	PreviousVersion  string        `json:"previous_version"`
	ManifestHash     string        `json:"manifest_hash"`
	ArchiveSHA256    string        `json:"archive_sha256"`
	Action           string        `json:"action"`
	DryRun           bool          `json:"dry_run"`
	Added            []string      `json:"added"`
	Replaced         []string      `json:"replaced"`
	Removed          []string      `json:"removed"`
	Unchanged        int           `json:"unchanged"`
	DriftOverwritten []string      `json:"drift_overwritten"`
	Signature        string        `json:"signature"`
	Checkpoint       string        `json:"checkpoint"`
	Gates            []gate.Result `json:"gates"`
	// PromptPacks are the packs a prompt_pack package registers
	// (registries/prompts_registry.csv), with their digests.
	PromptPacks   []PromptPack `json:"prompt_packs,omitempty"`
	LedgerEntryID string       `json:"-"` // the INSTALLED entry
	LedgerSeq     int64        `json:"-"`
	// OpID is the operation's op_id, on every entry it wrote (a later
	// entry that belongs to the same operation carries it too).
	OpID string `json:"-"`
}

// PromptPack is a pack an install registered.
type PromptPack struct {
	ID      string `json:"prompt_pack_id"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"` // the pack digest (internal/prompt)
}

// stagedPacks judges the packs of a prompt_pack package from the files
// extracted to stage (relative to root) as preflight judged them from the
// archive, and returns them with their digests. Preflight passed, so a
// finding here is a broken invariant.
func stagedPacks(root, stage string, m *manifest.Manifest) ([]gate.Pack, error) {
	if m.PackageType != prompt.PackageType {
		return nil, nil
	}
	r, err := os.OpenRoot(filepath.Join(root, filepath.FromSlash(stage)))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	hashes := map[string]string{}
	for _, a := range m.Assets {
		hashes[a.Path] = a.SHA256
	}
	var findings []string
	packs, err := gate.PromptPacks(m, func(paths []string) (map[string][]byte, error) {
		out := map[string][]byte{}
		for _, p := range paths {
			b, err := regfile.ReadIn(r, p)
			if err != nil {
				return nil, err
			}
			if plane.SHA256(b) == hashes[p] {
				out[p] = b
			}
		}
		return out, nil
	}, func(path, format string, args ...any) {
		findings = append(findings, path+": "+fmt.Sprintf(format, args...))
	})
	if err != nil {
		return nil, err
	}
	if len(findings) > 0 {
		return nil, fmt.Errorf("install: the extracted prompt packs do not pass the checks preflight passed: %s", strings.Join(findings, "; "))
	}
	return packs, nil
}

// Error is a refusal or failure of an install, rollback or checkpoint. Its
// Result, when set, is the full verdict (the gates' results).
type Error struct {
	code    string
	kind    string // kindRefusal, kindBroken, or "" when the code alone says what the error is
	Msg     string
	Details map[string]any
	Result  any
}

func (e *Error) Error() string { return e.Msg }

// Code returns the stable error code.
func (e *Error) Code() string { return e.code }

// Kind says what the error is where its code alone does not: "refusal"
// or "broken" (the kinds internal/cli reads).
func (e *Error) Kind() string { return e.kind }

const (
	// kindRefusal: the install, rollback or trust change was judged and
	// refused, whatever the code: a refusal by a gate carries the code of
	// the gate's finding (MANIFEST_INVALID, NOT_REGULAR, JOURNAL_PENDING,
	// ...), which elsewhere names invalid input or a busy plane.
	kindRefusal = "refusal"
	// kindBroken: the plane's recorded state breaks an invariant that the
	// tools keep.
	kindBroken = "broken"
)

// ErrorDetails returns the error's details.
func (e *Error) ErrorDetails() map[string]any { return e.Details }

// ErrorResult returns the verdict that goes with the error, if any.
func (e *Error) ErrorResult() any { return e.Result }

func refuse(code, format string, args ...any) *Error {
	return &Error{code: code, kind: kindRefusal, Msg: fmt.Sprintf(format, args...)}
}

// stagingPrefix names the private directories of operations under
// _staging/; Recover removes any a crashed operation left.
const stagingPrefix = ".cp-install-"

// Install installs or upgrades the package archive opts.Archive into the
// HO3 plane at root. See the package documentation for the order of steps.
// Refusals are *Error or the archive and manifest errors of the reader;
// the returned Result is non-nil whenever the package could be read.
func Install(ctx context.Context, root string, opts Options) (*Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := checkHO3(root); err != nil {
		return nil, err
	}
	if opts.DryRun {
		if pending, err := journalPending(root); err != nil || pending {
			return nil, errors.Join(err, pendingErr())
		}
		return install(ctx, root, opts, nil)
	}
	rec := &recorder{root: root, actor: opts.Actor.Name, authOff: opts.Actor.AuthOff, opID: newOpID(), workOrder: opts.WorkOrder,
		archive: filepath.Base(opts.Archive), archivePath: opts.Archive}
	// Refusals before the install begins (a lock held too long, a plane
	// that cannot be recovered) are outcomes too.
	lock, err := registry.Acquire(ctx, root)
	if err != nil {
		return nil, rec.refused(err, rec.failed(ctx, err))
	}
	defer lock.Release()
	if _, err := recoverLocked(ctx, root, opts.Actor); err != nil {
		return nil, rec.refused(err, rec.failed(ctx, err))
	}
	res, err := install(ctx, root, opts, rec)
	if err != nil && !rec.outcome {
		// Every refusal is an outcome, an unreadable archive included.
		if rec.applying {
			if pending, _ := journalPending(root); pending {
				return res, err // the journal owns the outcome: Recover records it
			}
		}
		return res, rec.refused(err, rec.failed(ctx, err))
	}
	return res, err
}

// install runs the steps after the lock; rec is nil for a dry run.
func install(ctx context.Context, root string, opts Options, rec *recorder) (*Result, error) {
	f, err := regfile.Open(opts.Archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	done := opts.phase()
	var contents *archive.Contents
	var scratch, stage string // the private directory and the extraction directory in it, relative to root
	if rec == nil {
		contents, err = archive.Scan(f, opts.Gate.Limits)
	} else {
		var cleanup func()
		if scratch, cleanup, err = privateDir(root); err != nil {
			return nil, err
		}
		defer cleanup()
		stage = scratch + "/files"
		if err = os.Mkdir(filepath.Join(root, filepath.FromSlash(stage)), 0o700); err != nil {
			return nil, err
		}
		contents, err = archive.Extract(f, filepath.Join(root, filepath.FromSlash(stage)), opts.Gate.Limits)
	}
	if err != nil {
		return nil, err
	}
	done("read the archive: %d files", len(contents.Files))
	done = opts.phase()
	m, err := manifest.Parse(contents.Manifest)
	if err != nil {
		return nil, err
	}
	mhash, err := m.Hash()
	if err != nil {
		return nil, err
	}
	res := &Result{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveSHA256: "sha256:" + contents.ArchiveSHA256,
		DryRun: opts.DryRun, Added: []string{}, Replaced: []string{}, Removed: []string{}, DriftOverwritten: []string{}, Gates: []gate.Result{}}
	if rec != nil {
		rec.pkg = res
	}
	sig, err := gate.ReadSig(opts.Archive)
	if err != nil {
		return res, err
	}
	rep, err := gate.Preflight(ctx, root, gate.Source{Archive: opts.Archive, Contents: contents, SigRead: true, Sig: sig,
		Expect: gate.Expect{PackageID: opts.ID, ArchiveSHA256: opts.ArchiveSHA256, ManifestHash: opts.ManifestHash}}, opts.Gate)
	if err != nil {
		return res, err
	}
	res.Gates = rep.Results
	res.Signature = signatureOf(rep)
	done("manifest and gates")
	installed, err := currentPackage(root, m.PackageID)
	if err != nil {
		return res, err
	}
	res.Action = ActionInstall
	if installed != nil {
		res.PreviousVersion = installed["version"]
		switch c := manifest.CompareVersions(m.Version, installed["version"]); {
		case c > 0:
			res.Action = ActionUpgrade
		case c == 0:
			res.Action = ActionReinstall
		default:
			res.Action = ActionDowngrade
		}
	}
	if err := workOrderGates(ctx, root, m, opts.WorkOrder, opts.Force, rep, rec); err != nil {
		return res, err
	}
	res.Gates = rep.Results
	if rep.Passed && res.Action == ActionReinstall && !opts.Force {
		res.Action = ActionNone
		return res, nil // the same version and hash: nothing to do, nothing written
	}
	if rec != nil {
		err := rec.intend(ctx, scratch, opMeta{Op: "install", OpID: rec.opID, Actor: opts.Actor.Name, WorkOrder: opts.WorkOrder,
			PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveSHA256: res.ArchiveSHA256,
			PreviousVersion: res.PreviousVersion, Action: res.Action, Signature: res.Signature, Weakened: rec.weakened})
		if err != nil {
			return res, err
		}
		if err := rec.start(ctx); err != nil {
			return res, err
		}
	}
	if !rep.Passed {
		return res, gateRefusal(rep, res)
	}

	done = opts.phase()
	p, err := plan(root, m, installed, stage)
	if err != nil {
		return res, err
	}
	done("planned against the disk: %d added, %d replaced, %d removed, %d unchanged", len(p.added), len(p.replaced), len(p.removed), p.unchanged)
	res.Added, res.Replaced, res.Removed, res.Unchanged = p.added, p.replaced, p.removed, p.unchanged
	if len(p.drift) > 0 && !opts.Force {
		e := refuse("HASH_MISMATCH", "%d governed file(s) changed on disk since they were installed (first: %s: %s); --force overwrites them and records it",
			len(p.drift), p.drift[0].path, p.drift[0].why)
		e.Details = map[string]any{"path": p.drift[0].path, "paths": driftPaths(p.drift)}
		e.Result = res
		return res, e
	}
	res.DriftOverwritten = driftPaths(p.drift)
	if opts.DryRun {
		return res, nil
	}

	now := opts.Now().UTC()
	done = opts.phase()
	v, err := snapshot.Take(root, snapshot.Options{Label: "auto: before " + res.Action + " " + m.PackageID + " " + m.Version, Actor: opts.Actor.Name, Now: now})
	if err != nil {
		return res, err
	}
	res.Checkpoint = v.VersionID
	if err := rec.checkpoint(ctx, v, true); err != nil {
		return res, err
	}
	done("checkpoint %s: %d files", v.VersionID, len(v.Files))
	done = opts.phase()

	receipt := plane.Receipt{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveSHA256: res.ArchiveSHA256,
		PlaneID: "ho3", InstalledAt: now.Format(time.RFC3339Nano), Actor: opts.Actor.Name, WorkOrderID: opts.WorkOrder, Signature: res.Signature,
		Files: []plane.ReceiptFile{}}
	for _, a := range m.Assets {
		receipt.Files = append(receipt.Files, plane.ReceiptFile{Path: a.Path, SHA256: a.SHA256, Size: a.Size, Mode: a.InstalledMode()})
	}
	packs, err := stagedPacks(root, stage, m)
	if err != nil {
		return res, err
	}
	for _, pk := range packs {
		res.PromptPacks = append(res.PromptPacks, PromptPack{ID: pk.ID, Version: pk.Version, SHA256: pk.SHA256})
	}
	changes, err := p.finish(root, m, receipt, contents.Manifest, now, packs)
	if err != nil {
		return res, err
	}
	kept, err := keepArchive(root, opts.Archive, scratch, m, "sha256:"+contents.ArchiveSHA256, sig)
	if err != nil {
		return res, err
	}
	changes = append(changes, kept...)
	meta, err := json.Marshal(opMeta{Op: "install", OpID: rec.opID, Actor: opts.Actor.Name, WorkOrder: opts.WorkOrder,
		PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveSHA256: res.ArchiveSHA256,
		PreviousVersion: res.PreviousVersion, Checkpoint: v.VersionID, Action: res.Action, Drift: res.DriftOverwritten, Signature: res.Signature, Weakened: rec.weakened,
		LedgerEntries: rec.ledgerEntries, Changed: ptr(res.changed())})
	if err != nil {
		return res, err
	}
	done("registries, receipt and archive prepared")
	done = opts.phase()
	rec.applying = true
	err = apply(root, changes, journal.Options{Meta: meta, Committed: func() error {
		e, err := rec.installed(ctx, res, false)
		res.LedgerEntryID, res.LedgerSeq, rec.outcome = e.ID, e.Seq, err == nil
		return err
	}})
	if err != nil {
		return res, err
	}
	done("journaled apply: %d changes", len(changes))
	pruneEmpty(root, res.Removed)
	return res, nil
}

// keepArchive plans the copy of the installed archive and its signature
// (the bytes G5 judged; nil: none) into packages_store/ (0444), as part of
// the install's one change. The archive is copied to the scratch directory
// first and checked against the hash the gates saw; a stale signature of
// the same version is removed.
func keepArchive(root, src, scratch string, m *manifest.Manifest, sha string, sig []byte) ([]journal.Change, error) {
	store := plane.StorePath(m.PackageID, m.Version)
	tmp := scratch + "/archive"
	in, err := regfile.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(out, h), in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != sha {
		return nil, refuse("SOURCE_CHANGED", "%s changed while it was being installed (%s, then %s)", filepath.Base(src), sha, got)
	}
	changes := []journal.Change{{Path: store, Src: tmp, Mode: fileMode}}
	if sig != nil {
		return append(changes, journal.Change{Path: store + ".sig", Data: sig, Mode: fileMode}), nil
	}
	return append(changes, journal.Change{Path: store + ".sig", Remove: true}), nil
}

// privateDir makes an operation's private directory under _staging/
// (which must be a real directory of the plane, not a symlink: everything
// is written and removed inside the plane) and returns its path relative
// to root and a function that removes it.
func privateDir(root string) (string, func(), error) {
	if err := realStaging(root); err != nil {
		return "", nil, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	dir := "_staging/" + stagingPrefix + randHex()
	if err := r.Mkdir(dir, 0o700); err != nil {
		return "", nil, err
	}
	if err := atomicfile.SyncIn(r, "_staging"); err != nil {
		return "", nil, err
	}
	return dir, func() {
		if r, err := os.OpenRoot(root); err == nil {
			r.RemoveAll(dir)
			r.Close()
		}
	}, nil
}

// realStaging refuses a _staging that is not a directory of the plane.
func realStaging(root string) error {
	fi, err := os.Lstat(filepath.Join(root, "_staging"))
	if errors.Is(err, os.ErrNotExist) {
		return os.Mkdir(filepath.Join(root, "_staging"), 0o755)
	} else if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &Error{code: "STATE_UNSAFE", kind: kindRefusal, Msg: "_staging is a " + fi.Mode().Type().String() + ", not a directory of the plane"}
	}
	return nil
}

// apply is journal.Apply behind one last check: every path the change
// writes or removes is part of the installed state (snapshot.Unmanaged),
// whatever the registries or a checkpoint file said.
func apply(root string, changes []journal.Change, opts journal.Options) error {
	governed, err := plane.GovernedRoots(root)
	if err != nil {
		return err
	}
	paths := make([]string, len(changes))
	for i, c := range changes {
		paths[i] = c.Path
	}
	if err := snapshot.CheckManaged(paths, governed); err != nil {
		return err
	}
	return journal.Apply(root, changes, opts)
}

// checkHO3 refuses a root that is not an HO3 plane.
func checkHO3(root string) error {
	t, err := plane.ReadTier(root)
	if err != nil || t.Tier != "HO3" {
		return refuse("NOT_A_PLANE", "%s is not an HO3 plane root (create one with cp-install bootstrap --root DIR)", filepath.Base(root))
	}
	return nil
}

func journalPending(root string) (bool, error) {
	_, err := os.Lstat(filepath.Join(root, journal.Dir))
	if err == nil {
		return true, nil
	} else if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func pendingErr() error {
	return &Error{code: "JOURNAL_PENDING", Msg: "an interrupted cp-install change is pending; run cp-install recover (a dry run does not recover)"}
}

// currentPackage returns the installed row of id, or nil.
func currentPackage(root, id string) (registry.Row, error) {
	rows, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r["package_id"] == id && r["status"] == registry.StatusInstalled {
			return r, nil
		}
	}
	return nil, nil
}

// gateRefusal is the refusal for a failed preflight: the code of the first
// error of the first failed gate; res, with every gate's result, as the
// result.
func gateRefusal(rep *gate.Report, res *Result) *Error {
	for _, r := range rep.Results {
		if !r.Passed && len(r.Errors) > 0 {
			f := r.Errors[0]
			e := refuse(f.Code, "%s: %s %s: %s", r.Gate, f.Code, f.Path, f.Message)
			e.Details = map[string]any{"gate": r.Gate, "path": f.Path}
			e.Result = res
			return e
		}
	}
	e := refuse("GATE_FAILED", "a gate failed")
	e.Result = res
	return e
}

// signatureOf is what G5 found: "signed:<key>", "waived", or "" when it
// did not pass.
func signatureOf(rep *gate.Report) string {
	for _, r := range rep.Results {
		switch {
		case r.Gate != "G5" || !r.Passed:
		case r.Details["waived"] == true:
			return registry.SignatureWaived
		default:
			if k, ok := r.Details["signed_by"].(string); ok {
				return "signed:" + k
			}
		}
	}
	return ""
}

// pruneEmpty removes the directories that removals left empty, up to the
// top-level directory. It is tidiness, not state: a crash here leaves only
// empty directories, which no check counts.
func pruneEmpty(root string, removed []string) {
	dirs := map[string]bool{}
	for _, p := range removed {
		for d := path.Dir(p); strings.Contains(d, "/"); d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := slices.Collect(maps.Keys(dirs))
	slices.SortFunc(sorted, func(a, b string) int { return len(b) - len(a) }) // deepest first
	for _, d := range sorted {
		os.Remove(filepath.Join(root, filepath.FromSlash(d))) // fails, harmlessly, unless empty
	}
}

// opMeta is what a journal's meta.json says about the operation in flight.
type opMeta struct {
	Op        string `json:"op"` // install or rollback
	OpID      string `json:"op_id"`
	Actor     string `json:"actor"`
	WorkOrder string `json:"work_order_id,omitempty"`
	// Weakened lists the controls the operation went without (G3's
	// WEAKENED_CONTROL: dependencies changed with no work order).
	Weakened        []string `json:"weakened_controls,omitempty"`
	PackageID       string   `json:"package_id,omitempty"`
	Version         string   `json:"version,omitempty"`
	ManifestHash    string   `json:"manifest_hash,omitempty"`
	ArchiveSHA256   string   `json:"archive_sha256,omitempty"`
	PreviousVersion string   `json:"previous_version,omitempty"`
	Action          string   `json:"action,omitempty"`
	Signature       string   `json:"signature,omitempty"`
	Checkpoint      string   `json:"checkpoint,omitempty"` // the automatic checkpoint taken first
	VersionID       string   `json:"version_id,omitempty"` // a rollback's target
	Drift           []string `json:"drift,omitempty"`
	// Trust is a trust change's TRUST_CHANGED, owed after its INSTALLED.
	Trust *TrustChange `json:"trust,omitempty"`
	// Changed is what the operation changes (its entry's metadata.changed),
	// so that an outcome Recover records says it too; nil in a journal an
	// earlier release wrote.
	Changed *ledger.Changed `json:"changed,omitempty"`
	// LedgerEntries is the number of entries in HO3's ledger before the
	// operation recorded anything: Recover looks for its events from that
	// seq only. (A journal that carries the byte offset ledger_size of
	// earlier releases instead is searched from the start.)
	LedgerEntries int64 `json:"ledger_entries"`
}

// changed is what res changes, as its INSTALLED entry records it
// (metadata.changed), each list sorted.
func (res *Result) changed() ledger.Changed {
	return ledger.Changed{Added: slices.Sorted(slices.Values(res.Added)), Modified: slices.Sorted(slices.Values(res.Replaced)),
		Removed: slices.Sorted(slices.Values(res.Removed))}
}

func ptr[T any](v T) *T { return &v }
