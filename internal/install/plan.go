package install

import (
	"bytes"
	"os"
	"path/filepath"
	"time"

	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/journal"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/snapshot"
	"github.com/control-plane/cp/pkg/manifest"
)

// Modes on disk: receipts, manifests and kept archives are read-only;
// registries are rewritten only by rename. Installed files get their
// asset's mode (manifest.Asset.FileMode): 0444, or 0555 for an executable.
const (
	fileMode     = 0o444
	registryMode = 0o644
)

// drift is a governed file whose bytes are not what its owner installed,
// or an unowned file in the way.
type drift struct{ path, why string }

func driftPaths(ds []drift) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.path
	}
	return out
}

// planned is an install's change to the governed files, judged against
// the disk.
type planned struct {
	changes                 []journal.Change
	added, replaced         []string
	removed                 []string
	unchanged               int
	drift                   []drift
	ownerRows, packagesRows []registry.Row
	promptRows              []registry.Row
}

// plan compares the package's assets (and the files of the installed
// version it replaces) with the disk. stage is where the archive was
// extracted (relative to root), or "" for a dry run, which plans no changes.
func plan(root string, m *manifest.Manifest, installed registry.Row, stage string) (*planned, error) {
	owners, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return nil, err
	}
	pkgs, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	prompts, err := registry.Read(root, registry.Prompts)
	if err != nil {
		return nil, err
	}
	p := &planned{added: []string{}, replaced: []string{}, removed: []string{}, ownerRows: owners, packagesRows: pkgs, promptRows: prompts}
	byPath := make(map[string]registry.Row, len(owners))
	for _, o := range owners {
		byPath[o["path"]] = o
	}
	declared := make(map[string]bool, len(m.Assets))
	paths := make([]string, 0, len(m.Assets))
	for _, a := range m.Assets {
		declared[a.Path] = true
		paths = append(paths, a.Path)
	}
	var dropped []registry.Row
	if installed != nil {
		governed, err := plane.GovernedRoots(root)
		if err != nil {
			return nil, err
		}
		for _, o := range owners {
			if o["package_id"] == m.PackageID && !declared[o["path"]] {
				if err := snapshot.CheckManaged([]string{o["path"]}, governed); err != nil {
					return nil, err // a tampered ownership row: never remove what it names
				}
				dropped = append(dropped, o)
				paths = append(paths, o["path"])
			}
		}
	}
	stats, err := snapshot.StatAll(root, paths)
	if err != nil {
		return nil, err
	}
	promised := newPromises(root, pkgs)
	// changed says why a file's bytes (sha) are not what its owner o was
	// installed with, or "" when every record of the install agrees.
	changed := func(o registry.Row, p, sha string) string {
		if o["sha256"] != sha {
			return "holds " + sha + ", " + o["package_id"] + " installed " + o["sha256"]
		}
		return promised.check(o["package_id"], p, sha)
	}
	for i, a := range m.Assets {
		st := stats[i]
		switch {
		case !st.Exists:
			p.added = append(p.added, a.Path)
		case st.File.SHA256 == a.SHA256 && st.File.Mode == snapshot.FormatMode(a.FileMode()):
			p.unchanged++
			continue
		default:
			p.replaced = append(p.replaced, a.Path)
			o := byPath[a.Path]
			switch {
			case st.File.SHA256 == a.SHA256:
				// the new bytes already: only the mode is put right
			case o == nil:
				p.drift = append(p.drift, drift{a.Path, "exists but is owned by no package"})
			default:
				if why := changed(o, a.Path, st.File.SHA256); why != "" {
					p.drift = append(p.drift, drift{a.Path, why})
				}
			}
		}
		if stage != "" {
			p.changes = append(p.changes, journal.Change{Path: a.Path, Src: stage + "/" + a.Path, Mode: a.FileMode()})
		}
	}
	for j, o := range dropped {
		st := stats[len(m.Assets)+j]
		if !st.Exists {
			continue // already gone; its row goes below
		}
		p.removed = append(p.removed, o["path"])
		if why := changed(o, o["path"], st.File.SHA256); why != "" {
			p.drift = append(p.drift, drift{o["path"], why})
		}
		if stage != "" {
			p.changes = append(p.changes, journal.Change{Path: o["path"], Remove: true})
		}
	}
	return p, nil
}

// promises are what the plane promised of each installed package's files,
// besides file_ownership.csv: the hashes its receipt lists and the hashes
// its installed manifest declares, that manifest being the one
// packages_state.csv records (whose hash G5's signature and the kept
// archive vouch for). A CSV row edited to match an edited file is drift
// all the same. Read once per package, on first use.
type promises struct {
	root string
	rows map[string]registry.Row
	byID map[string]*promise
}

type promise struct {
	receipt, manifest map[string]string // path → sha256
	err               string            // why the package's records cannot vouch for any file
}

func newPromises(root string, pkgs []registry.Row) *promises {
	rows := map[string]registry.Row{}
	for _, r := range pkgs {
		if r["status"] == registry.StatusInstalled {
			rows[r["package_id"]] = r
		}
	}
	return &promises{root: root, rows: rows, byID: map[string]*promise{}}
}

// check says why sha is not what package id promised for path, or "".
func (ps *promises) check(id, path, sha string) string {
	p, ok := ps.byID[id]
	if !ok {
		p = ps.load(id)
		ps.byID[id] = p
	}
	switch {
	case p.err != "":
		return p.err
	case p.receipt[path] != sha:
		return "holds " + sha + ", as file_ownership.csv says, but " + id + "'s receipt records " + orNone(p.receipt[path])
	case p.manifest[path] != sha:
		return "holds " + sha + ", but " + id + "'s installed manifest declares " + orNone(p.manifest[path])
	}
	return ""
}

func (ps *promises) load(id string) *promise {
	row := ps.rows[id]
	if row == nil {
		return &promise{err: "owned by " + id + ", which is not an installed package"}
	}
	rc, err := plane.ReadReceipt(ps.root, id)
	if err != nil {
		return &promise{err: id + "'s receipt cannot vouch for it: it is unreadable or invalid"}
	}
	b, err := os.ReadFile(filepath.Join(ps.root, filepath.FromSlash(plane.ManifestPath(id))))
	if err != nil {
		return &promise{err: id + "'s installed manifest cannot vouch for it: it is unreadable"}
	}
	m, err := manifest.Parse(b)
	var h string
	if err == nil {
		h, err = m.Hash()
	}
	if err != nil || h != row["manifest_hash"] || rc.ManifestHash != h {
		return &promise{err: id + "'s installed manifest is not the one packages_state.csv records"}
	}
	p := &promise{receipt: map[string]string{}, manifest: map[string]string{}}
	for _, f := range rc.Files {
		p.receipt[f.Path] = f.SHA256
	}
	for _, a := range m.Assets {
		p.manifest[a.Path] = a.SHA256
	}
	return p
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// finish adds the receipt, the installed manifest and the registries to
// the planned changes and returns them all: file_ownership.csv and
// packages_state.csv always, prompts_registry.csv when the package's packs
// (those of a prompt_pack package, as the gates judged them) change its
// rows.
func (p *planned) finish(root string, m *manifest.Manifest, receipt plane.Receipt, manifestBytes []byte, now time.Time, packs []gate.Pack) ([]journal.Change, error) {
	rb, err := receipt.Marshal()
	if err != nil {
		return nil, err
	}
	owners := make([]registry.Row, 0, len(p.ownerRows)+len(m.Assets))
	for _, o := range p.ownerRows {
		if o["package_id"] != m.PackageID {
			owners = append(owners, o)
		}
	}
	for _, a := range m.Assets {
		owners = append(owners, registry.Owner{Path: a.Path, PackageID: m.PackageID, SHA256: a.SHA256, Size: a.Size,
			Classification: a.Classification, InstalledAt: now}.Row())
	}
	pkgs := make([]registry.Row, 0, len(p.packagesRows)+1)
	for _, r := range p.packagesRows {
		if r["package_id"] != m.PackageID {
			pkgs = append(pkgs, r)
		}
	}
	pkgs = append(pkgs, registry.Package{ID: m.PackageID, Version: m.Version, ManifestHash: receipt.ManifestHash,
		ArchiveSHA256: receipt.ArchiveSHA256, Status: registry.StatusInstalled, Signature: receipt.Signature,
		InstalledAt: now, Actor: receipt.Actor, WorkOrderID: receipt.WorkOrderID}.Row())
	ob, err := registry.Encode(registry.Ownership, owners)
	if err != nil {
		return nil, err
	}
	pb, err := registry.Encode(registry.Packages, pkgs)
	if err != nil {
		return nil, err
	}
	changes := p.changes
	if pc, err := p.promptChange(m, packs, now); err != nil {
		return nil, err
	} else if pc != nil {
		changes = append(changes, *pc)
	}
	return append(changes,
		journal.Change{Path: plane.ReceiptPath(m.PackageID), Data: rb, Mode: fileMode},
		journal.Change{Path: plane.ManifestPath(m.PackageID), Data: manifestBytes, Mode: fileMode},
		journal.Change{Path: registry.Dir + "/" + registry.Ownership.File, Data: ob, Mode: registryMode},
		journal.Change{Path: registry.Dir + "/" + registry.Packages.File, Data: pb, Mode: registryMode},
	), nil
}

// promptChange is the new prompts_registry.csv when the package's rows
// change, or nil: the rows of other packages are kept, the package's own
// are replaced by one active row per pack (a pack whose version and digest
// are unchanged keeps its row and registered_at), so an upgrade that drops
// a pack unregisters it.
func (p *planned) promptChange(m *manifest.Manifest, packs []gate.Pack, now time.Time) (*journal.Change, error) {
	old := map[string]registry.Row{}
	rows := make([]registry.Row, 0, len(p.promptRows)+len(packs))
	for _, r := range p.promptRows {
		if r["package_id"] == m.PackageID {
			old[r["prompt_pack_id"]] = r
			continue
		}
		rows = append(rows, r)
	}
	for _, pk := range packs {
		if o := old[pk.ID]; o != nil && o["sha256"] == pk.SHA256 && o["version"] == pk.Version && o["status"] == registry.StatusActive &&
			o["path"] == prompt.PackDir(pk.ID) {
			rows = append(rows, o)
			continue
		}
		rows = append(rows, registry.Prompt{ID: pk.ID, PackageID: m.PackageID, Path: prompt.PackDir(pk.ID), SHA256: pk.SHA256,
			Version: pk.Version, Status: registry.StatusActive, RegisteredAt: now}.Row())
	}
	before, err := registry.Encode(registry.Prompts, p.promptRows)
	if err != nil {
		return nil, err
	}
	after, err := registry.Encode(registry.Prompts, rows)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(before, after) {
		return nil, nil
	}
	return &journal.Change{Path: registry.Dir + "/" + registry.Prompts.File, Data: after, Mode: registryMode}, nil
}
