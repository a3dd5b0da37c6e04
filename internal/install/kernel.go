package install

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/ledger"
	"golang.org/x/mod/sumdb/note"
)

// The kernel is installed identically on HO3, HO2 and HO1 (G0K). An
// install of one tier at a time could never keep that, so the kernel is
// never installed from an archive (KERNEL_PARITY): every kernel release is
// built by cp-install itself (plane.BuildRelease) and installed on all
// three tiers as one journaled change, whose journal lives at the HO3 root
// and covers the lower tiers' files under planes/. A crash at any instant
// leaves all three tiers before or all three after. (The VERSION rule of
// package gate refuses a kernel archive: KERNEL_PARITY.)

// kernelKept refuses (KERNEL_PARITY) a rollback to checkpoint v when v
// holds another kernel version than the plane: a checkpoint covers HO3
// alone, so restoring its kernel would break parity with HO2 and HO1.
func kernelKept(root string, v *snapshot.Version) error {
	row, err := currentPackage(root, plane.KernelID)
	if err != nil {
		return err
	}
	for _, p := range v.Packages {
		if p.PackageID == plane.KernelID && row != nil && p.Version == row["version"] {
			return nil
		}
	}
	e := refuse("KERNEL_PARITY", "%s holds another kernel release than the plane's: a rollback restores HO3 alone and would break kernel parity (G0K); "+
		"change trust back with cp-install trust add|remove instead", v.VersionID)
	e.Details = map[string]any{"version_id": v.VersionID}
	return e
}

// TrustOptions configure Trust.
type TrustOptions struct {
	Add bool // add the key's purposes; else remove them
	// Key is a verifier key or a path to one; for a removal, also the
	// name of a trusted key.
	Key string
	// Purposes to add (at least one) or remove (none: every purpose, so
	// the key is no longer trusted at all).
	Purposes []string
	// Force removes a key trusted for packages that installed packages
	// are signed by: G5 then fails for them until they are reinstalled
	// signed by another trusted key (revoking a compromised key).
	Force bool
	Actor plane.Actor
	Now   func() time.Time
}

// TrustChange is what a trust change did to one key, as TRUST_CHANGED
// records it (the public key only: trusted_keys.json holds nothing else).
type TrustChange struct {
	Change      string   `json:"change"` // added, removed or none
	KeyName     string   `json:"key_name"`
	KeyHash     string   `json:"key_hash"` // the note key hash, 8 hex digits
	Key         string   `json:"key"`      // the verifier key
	Purposes    []string `json:"purposes"` // the purposes added or removed
	KeyPurposes []string `json:"key_purposes"`
	InUse       []string `json:"in_use,omitempty"` // PKG@version signed by a removed package key (Force)
	PackageID   string   `json:"package_id,omitempty"`
	Version     string   `json:"version,omitempty"` // the kernel release that carries the change
	// Roots are the governed roots a roots change added (Change
	// "roots_added"), GovernedRoots the list after it; a key change holds
	// neither.
	Roots         []string `json:"roots,omitempty"`
	GovernedRoots []string `json:"governed_roots,omitempty"`
}

// draft is the TRUST_CHANGED entry of the change, made by operation opID.
func (t *TrustChange) draft(opID, actor string, recovered bool) ledger.Draft {
	if t.Change == RootsAdded {
		m := map[string]any{"op_id": opID, "actor": actor, "change": t.Change, "roots": strs(t.Roots), "governed_roots": strs(t.GovernedRoots),
			"package_id": t.PackageID, "version": t.Version}
		if recovered {
			m["recovered"] = true
		}
		return ledger.Draft{EventType: "TRUST_CHANGED", SubmissionID: plane.GovernedRootsFile, Decision: strings.ToUpper(t.Change),
			Reason: "governed roots added: " + strings.Join(t.Roots, ", "), Metadata: m}
	}
	m := map[string]any{"op_id": opID, "actor": actor, "change": t.Change, "key_name": t.KeyName, "key_hash": t.KeyHash, "key": t.Key,
		"purposes": strs(t.Purposes), "key_purposes": strs(t.KeyPurposes), "package_id": t.PackageID, "version": t.Version}
	if len(t.InUse) > 0 {
		m["in_use"] = strs(t.InUse)
	}
	if recovered {
		m["recovered"] = true
	}
	return ledger.Draft{EventType: "TRUST_CHANGED", SubmissionID: t.KeyName, Decision: strings.ToUpper(t.Change),
		Reason: t.Change + " " + t.KeyName + " for " + strings.Join(t.Purposes, ","), Metadata: m}
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TrustResult is what a trust change did: the change and the kernel
// release that carries it (nil when nothing changed).
type TrustResult struct {
	TrustChange
	Kernel        *Result `json:"kernel"`
	LedgerEntryID string  `json:"-"` // the TRUST_CHANGED entry
	LedgerSeq     int64   `json:"-"`
}

// Trust changes config/trusted_keys.json, the one way to do so after
// bootstrap (DESIGN.md §6): it builds the next kernel patch release with
// the new file and installs it on HO3, HO2 and HO1 in one journaled change,
// recorded in HO3's ledger as INSTALL_STARTED, then INSTALLED and
// TRUST_CHANGED. A change that changes nothing (a purpose already held, or
// not held) writes nothing. Refusals: KERNEL_MISMATCH (parity is broken
// already), KEY_NOT_TRUSTED, KEY_NAME_TAKEN, KEY_IN_USE (without Force),
// HASH_MISMATCH (a kernel file edited on disk), STATE_UNSAFE (a lower
// tier's directory that is not a real directory of the plane).
func Trust(ctx context.Context, root string, opts TrustOptions) (*TrustResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := checkHO3(root); err != nil {
		return nil, err
	}
	for _, p := range opts.Purposes {
		if !slices.Contains(trust.Purposes, p) {
			return nil, &Error{code: "USAGE", Msg: fmt.Sprintf("unknown key purpose %q (want %s)", p, strings.Join(trust.Purposes, ", "))}
		}
	}
	if opts.Add && len(opts.Purposes) == 0 {
		return nil, &Error{code: "USAGE", Msg: "trust add needs --purpose P (" + strings.Join(trust.Purposes, ", ") + ")"}
	}
	lock, err := registry.Acquire(ctx, root)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if _, err := recoverLocked(ctx, root, opts.Actor); err != nil {
		return nil, err
	}
	if err := realTiers(root); err != nil {
		return nil, err
	}
	if err := kernelWhole(root, "a trust change"); err != nil {
		return nil, err
	}
	trusted, err := trust.Load(root)
	if err != nil {
		return nil, err
	}
	list, change, err := changeTrust(root, trusted, opts)
	if err != nil {
		return nil, err
	}
	if change.Change == "none" {
		return &TrustResult{TrustChange: *change}, nil
	}
	res, err := installKernel(ctx, root, list, nil, change, opts)
	out := &TrustResult{TrustChange: *change, Kernel: res}
	if res != nil {
		out.LedgerEntryID, out.LedgerSeq = res.LedgerEntryID, res.LedgerSeq
	}
	return out, err
}

// changeTrust returns the trusted keys after the change, and the change.
func changeTrust(root string, trusted []trust.Key, opts TrustOptions) ([]trust.Key, *TrustChange, error) {
	list := slices.Clone(trusted)
	at := -1
	var name, text string
	var hash uint32
	if !opts.Add {
		for i, k := range list {
			if k.Name == opts.Key {
				at, name, text = i, k.Name, k.Key
			}
		}
	}
	if at < 0 {
		v, err := keys.Verifier(opts.Key)
		if err != nil && !opts.Add && !strings.ContainsAny(opts.Key, "/+.") {
			names := make([]string, len(list))
			for i, k := range list {
				names[i] = k.Name
			}
			return nil, nil, refuse("KEY_NOT_TRUSTED", "%s is not the name of a trusted key (trusted: %s)", opts.Key, strings.Join(names, ", "))
		} else if err != nil {
			return nil, nil, err
		}
		if text, err = trust.VerifierText(opts.Key); err != nil {
			return nil, nil, err
		}
		name, hash = v.Name(), v.KeyHash()
		for i, k := range list {
			if k.Name != name {
				continue
			}
			if k.Key != text {
				e := refuse("KEY_NAME_TAKEN", "a different key named %s is trusted already; key names identify signers (signed:%s), so give the new key another name", name, name)
				if !opts.Add {
					e = refuse("KEY_NOT_TRUSTED", "the key %s is not trusted (a different key of that name is)", name)
				}
				return nil, nil, e
			}
			at = i
		}
	}
	if at >= 0 {
		v, err := keys.Verifier(list[at].Key)
		if err != nil {
			return nil, nil, err
		}
		hash = v.KeyHash()
	}
	c := &TrustChange{Change: "none", KeyName: name, KeyHash: fmt.Sprintf("%08x", hash), Key: text, Purposes: []string{}}
	if opts.Add {
		if at < 0 {
			list = append(list, trust.Key{Name: name, Key: text, AddedAt: opts.Now().UTC().Format(time.RFC3339Nano)})
			at = len(list) - 1
		}
		k := &list[at]
		k.Purposes = slices.Clone(k.Purposes)
		for _, p := range opts.Purposes {
			if !slices.Contains(k.Purposes, p) {
				k.Purposes = append(k.Purposes, p)
				c.Purposes = append(c.Purposes, p)
			}
		}
		c.KeyPurposes = k.Purposes
		if len(c.Purposes) > 0 {
			c.Change = "added"
		}
		return list, c, nil
	}
	if at < 0 {
		return nil, nil, refuse("KEY_NOT_TRUSTED", "%s is not a trusted key; cp-install trust remove takes a trusted key, its path or its name", name)
	}
	drop := opts.Purposes
	if len(drop) == 0 {
		drop = list[at].Purposes
	}
	var keep []string
	for _, p := range list[at].Purposes {
		if slices.Contains(drop, p) {
			c.Purposes = append(c.Purposes, p)
		} else {
			keep = append(keep, p)
		}
	}
	c.KeyPurposes = append([]string{}, keep...)
	if len(c.Purposes) == 0 {
		return list, c, nil
	}
	c.Change = "removed"
	if slices.Contains(c.Purposes, trust.PurposePackage) {
		inUse, err := signedBy(root, name)
		if err != nil {
			return nil, nil, err
		}
		if len(inUse) > 0 && !opts.Force {
			e := refuse("KEY_IN_USE", "%d installed package(s) are signed by %s (first: %s): without it G5 fails for them; reinstall them signed by another trusted key first, or --force to revoke it anyway",
				len(inUse), name, inUse[0])
			e.Details = map[string]any{"packages": strs(inUse)}
			return nil, nil, e
		}
		c.InUse = inUse
	}
	if slices.Contains(c.Purposes, trust.PurposeCheckpoint) {
		var others []string
		for i, k := range list {
			if i != at && slices.Contains(k.Purposes, trust.PurposeCheckpoint) {
				others = append(others, k.Key)
			}
		}
		inUse, err := checkpointsSignedBy(root, list[at].Key, others)
		if err != nil {
			return nil, nil, err
		}
		if len(inUse) > 0 && !opts.Force {
			e := refuse("KEY_IN_USE", "the stored checkpoints of %d ledger(s) are signed by %s and by no other key trusted for checkpoints (first: %s): without it verify and G6 fail for them; trust its successor and let the plane sign with it first, or --force to revoke it anyway",
				len(inUse), name, inUse[0])
			e.Details = map[string]any{"ledgers": strs(inUse)}
			return nil, nil, e
		}
	}
	if len(keep) == 0 {
		list = slices.Delete(list, at, at+1)
	} else {
		list[at].Purposes = keep
	}
	return list, c, nil
}

// checkpointsSignedBy lists the tier ledgers (paths relative to root)
// whose stored checkpoint is signed by the key text and by none of others:
// distrusting that key for checkpoints would leave them unverifiable.
func checkpointsSignedBy(root, text string, others []string) ([]string, error) {
	v, err := keys.Verifier(text)
	if err != nil {
		return nil, err
	}
	var rest []note.Verifier
	for _, o := range others {
		if ov, err := keys.Verifier(o); err == nil {
			rest = append(rest, ov)
		}
	}
	var out []string
	for _, t := range plane.Layout {
		rel := path.Join(t.Dir, t.Ledger)
		_, ckpt, _ := ledger.SidePaths(filepath.Join(root, filepath.FromSlash(rel)))
		b, err := regfile.ReadNoFollow(ckpt)
		if err != nil {
			continue // none, or unreadable: verify and G6 report it either way
		}
		if _, err := note.Open(b, note.VerifierList(v)); err != nil {
			continue
		}
		if len(rest) > 0 {
			if _, err := note.Open(b, note.VerifierList(rest...)); err == nil {
				continue
			}
		}
		out = append(out, rel)
	}
	return out, nil
}

// signedBy lists the packages installed on any tier (PKG@version) whose
// signature is recorded as made by key name.
func signedBy(root, name string) ([]string, error) {
	var out []string
	for _, t := range plane.Layout {
		rows, err := registry.Read(filepath.Join(root, filepath.FromSlash(t.Dir)), registry.Packages)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			id := r["package_id"] + "@" + r["version"]
			if r["status"] == registry.StatusInstalled && r["signature"] == "signed:"+name && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// realTiers refuses (STATE_UNSAFE) lower tiers whose directories are not
// real directories of the plane: a symlinked planes/ho2 could point a
// kernel install at HO3's own files.
func realTiers(root string) error {
	for _, d := range []string{"planes", "planes/ho2", "planes/ho1"} {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &Error{code: "STATE_UNSAFE", kind: kindRefusal, Msg: d + " is a " + fi.Mode().Type().String() + ", not a directory of the plane"}
		}
	}
	return nil
}

// nextPatch returns version with its patch number raised by one.
func nextPatch(version string) (string, error) {
	i := strings.LastIndexByte(version, '.')
	n, err := strconv.Atoi(version[i+1:])
	if i < 0 || err != nil || n < 0 || strings.Count(version, ".") != 2 {
		return "", &Error{code: "KERNEL_MISMATCH", kind: kindBroken, Msg: fmt.Sprintf("the installed kernel's version %q is not MAJOR.MINOR.PATCH", version)}
	}
	return version[:i+1] + strconv.Itoa(n+1), nil
}

// installKernel builds the next kernel patch release with trusted as its
// trusted keys and installs it on every tier in one journaled change.
// roots is the release's config/governed_roots.json (nil: the one on disk).
func installKernel(ctx context.Context, root string, trusted []trust.Key, roots []byte, change *TrustChange, opts TrustOptions) (*Result, error) {
	tb, err := trust.Marshal(trusted)
	if err != nil {
		return nil, err
	}
	if roots == nil {
		if roots, err = os.ReadFile(filepath.Join(root, filepath.FromSlash(plane.GovernedRootsFile))); err != nil {
			return nil, err
		}
	}
	installed, err := currentPackage(root, plane.KernelID)
	if err != nil {
		return nil, err
	}
	if installed == nil {
		return nil, refuse("KERNEL_MISMATCH", "%s is not installed on HO3", plane.KernelID)
	}
	version, err := nextPatch(installed["version"])
	if err != nil {
		return nil, err
	}
	files, err := plane.KernelFiles(roots, tb)
	if err != nil {
		return nil, err
	}
	rel, err := plane.BuildRelease(version, files)
	if err != nil {
		return nil, err
	}
	return installRelease(ctx, root, rel, installed["version"], change, opts)
}

// installRelease installs kernel release rel, replacing previous, on every
// tier in one journaled change, recorded with change.
func installRelease(ctx context.Context, root string, rel *plane.Release, previous string, change *TrustChange, opts TrustOptions) (*Result, error) {
	version := rel.Version
	change.PackageID, change.Version = plane.KernelID, version
	res := &Result{PackageID: plane.KernelID, Version: version, PreviousVersion: previous, ManifestHash: rel.ManifestHash,
		ArchiveSHA256: rel.ArchiveSHA256, Action: ActionUpgrade, Added: []string{}, Replaced: []string{}, Removed: []string{},
		DriftOverwritten: []string{}, Signature: registry.SignatureWaived, Gates: []gate.Result{}}
	rec := &recorder{root: root, actor: opts.Actor.Name, authOff: opts.Actor.AuthOff, opID: newOpID(), archive: filepath.Base(plane.StorePath(plane.KernelID, version)),
		pkg: res, trust: change}
	now := opts.Now().UTC()

	var changes []journal.Change
	for _, t := range plane.Layout {
		tc, err := kernelTier(root, t, rel, res, now, opts.Actor.Name)
		if err != nil {
			return res, err
		}
		changes = append(changes, tc...)
	}
	scratch, cleanup, err := privateDir(root)
	if err != nil {
		return res, err
	}
	defer cleanup()
	op := opMeta{Op: "install", OpID: rec.opID, Actor: opts.Actor.Name, PackageID: plane.KernelID, Version: version, ManifestHash: rel.ManifestHash,
		ArchiveSHA256: rel.ArchiveSHA256, PreviousVersion: res.PreviousVersion, Action: res.Action, Signature: res.Signature, Trust: change}
	if err := rec.intend(ctx, scratch, op); err != nil {
		return res, err
	}
	if err := rec.start(ctx); err != nil {
		return res, err
	}
	op.LedgerEntries, op.Changed = rec.ledgerEntries, ptr(res.changed())
	meta, err := json.Marshal(op)
	if err != nil {
		return res, rec.refused(err, rec.failed(ctx, err))
	}
	if err := checkTiersManaged(root, changes); err != nil {
		return res, rec.refused(err, rec.failed(ctx, err))
	}
	err = journal.Apply(root, changes, journal.Options{Meta: meta, Committed: func() error {
		e, err := rec.installed(ctx, res, false)
		res.LedgerEntryID, res.LedgerSeq, rec.outcome = e.ID, e.Seq, err == nil
		res.OpID = rec.opID
		return err
	}})
	if err != nil && !rec.outcome {
		if pending, _ := journalPending(root); !pending {
			return res, rec.refused(err, rec.failed(ctx, err))
		}
	}
	return res, err
}

// kernelTier plans release rel on tier t: its files (a file the installed
// kernel's receipt does not match on disk is HASH_MISMATCH: never
// overwritten unseen), its receipt, installed manifest and registries, as
// changes by path from the HO3 root. res gets HO3's file counts.
func kernelTier(root string, t plane.TierLayout, rel *plane.Release, res *Result, now time.Time, actor string) ([]journal.Change, error) {
	tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
	installed, err := currentPackage(tdir, plane.KernelID)
	if err != nil {
		return nil, err
	}
	if installed == nil {
		return nil, refuse("KERNEL_MISMATCH", "%s is not installed on %s", plane.KernelID, t.Tier)
	}
	p, err := plan(tdir, rel.Manifest, installed, "-")
	if err != nil {
		return nil, err
	}
	if len(p.drift) > 0 {
		e := refuse("HASH_MISMATCH", "%s: %d kernel file(s) changed on disk since they were installed (first: %s: %s); repair them (cp-install rollback, or restore the bytes) first",
			t.Tier, len(p.drift), p.drift[0].path, p.drift[0].why)
		e.Details = map[string]any{"path": p.drift[0].path, "paths": driftPaths(p.drift), "tier": t.PlaneID}
		return nil, e
	}
	for i, c := range p.changes {
		if c.Src != "" { // the release's bytes, not an extracted copy
			p.changes[i].Src, p.changes[i].Data = "", rel.Files[c.Path]
		}
	}
	if t.PlaneID == "ho3" {
		res.Added, res.Replaced, res.Removed, res.Unchanged = p.added, p.replaced, p.removed, p.unchanged
	}
	receipt := plane.Receipt{PackageID: plane.KernelID, Version: rel.Version, ManifestHash: rel.ManifestHash, ArchiveSHA256: rel.ArchiveSHA256,
		PlaneID: t.PlaneID, InstalledAt: now.Format(time.RFC3339Nano), Actor: actor, Signature: registry.SignatureWaived, Files: []plane.ReceiptFile{}}
	for _, a := range rel.Manifest.Assets {
		receipt.Files = append(receipt.Files, plane.ReceiptFile{Path: a.Path, SHA256: a.SHA256, Size: a.Size})
	}
	changes, err := p.finish(tdir, rel.Manifest, receipt, rel.ManifestBytes, now, nil)
	if err != nil {
		return nil, err
	}
	// Every tier keeps the archive of the kernel it installed (G0B
	// re-hashes it); a release is built, never signed.
	store := plane.StorePath(plane.KernelID, rel.Version)
	changes = append(changes, journal.Change{Path: store, Data: rel.Archive, Mode: fileMode},
		journal.Change{Path: store + ".sig", Remove: true})
	if t.Dir != "" {
		for i := range changes {
			changes[i].Path = t.Dir + "/" + changes[i].Path
		}
	}
	return changes, nil
}

// checkTiersManaged is apply's last check for a change over every tier:
// each path, relative to its own tier, is part of that tier's installed
// state (snapshot.Unmanaged).
func checkTiersManaged(root string, changes []journal.Change) error {
	governed := map[string][]string{}
	for _, c := range changes {
		t, rel := plane.Layout[0], c.Path
		for _, l := range plane.Layout[1:] {
			if p, ok := strings.CutPrefix(c.Path, l.Dir+"/"); ok {
				t, rel = l, p
			}
		}
		g, ok := governed[t.PlaneID]
		if !ok {
			var err error
			if g, err = plane.GovernedRoots(filepath.Join(root, filepath.FromSlash(t.Dir))); err != nil {
				return err
			}
			governed[t.PlaneID] = g
		}
		if err := snapshot.CheckManaged([]string{rel}, g); err != nil {
			return err
		}
	}
	return nil
}

// kernelWhole refuses a change (what: "a trust change", "a roots change")
// that installs the kernel on every tier while kernel parity is broken
// already (G0K): KERNEL_MISMATCH, naming the first finding.
func kernelWhole(root, what string) error {
	r, err := gate.G0K(root)
	if err != nil {
		return err
	}
	if r.Passed {
		return nil
	}
	e := refuse("KERNEL_MISMATCH", "kernel parity is broken already (%s: %s %s); %s installs the kernel on every tier and needs it whole",
		r.Errors[0].Code, r.Errors[0].Path, r.Errors[0].Message, what)
	e.Details = map[string]any{"gate": "G0K"}
	return e
}
