package trace

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/ledger"
)

// Inventory is the installed packages of each tier.
type Inventory struct {
	Tiers []TierInventory `json:"tiers"`
}

// TierInventory is one tier's installed packages, by package id.
type TierInventory struct {
	Tier     string    `json:"tier"` // ho3, ho2, ho1
	Packages []Package `json:"packages"`
}

// Package is one installed package as inventory shows it.
type Package struct {
	PackageID    string `json:"package_id"`
	Version      string `json:"version"`
	PackageType  string `json:"package_type"`
	SpecID       string `json:"spec_id"`
	FrameworkID  string `json:"framework_id"`
	ManifestHash string `json:"manifest_hash"`
	Files        int    `json:"files"`
	// Signature is "signed:<key name>" or "waived" (the waiver is in the
	// install entry's weakened_control).
	Signature   string `json:"signature"`
	WorkOrderID string `json:"work_order_id,omitempty"`
	// InstalledSeq and InstalledEntry are the entry (INSTALLED) of the
	// tier's own ledger that installed this version with this manifest; nil when none does (a
	// receipt the ledger never saw: a finding, not a detail).
	InstalledSeq   *int64 `json:"installed_seq"`
	InstalledEntry string `json:"installed_entry,omitempty"`
	// InstalledTier is "ho3" when the entry is in HO3's ledger rather than
	// the tier's own: a kernel release (cp-install trust add|remove) changes
	// the kernel of every tier in one operation recorded in HO3.
	InstalledTier string `json:"installed_tier,omitempty"`
}

// Installed returns the installed packages of the tiers of the plane at
// root (only the one named by tierID, if set), each with the entry of the
// tier's own ledger that installed it, looked up by subject through the
// index.
func Installed(ctx context.Context, root, tierID string) (*Inventory, error) {
	ts, err := tiers(root, tierID)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Tiers: []TierInventory{}}
	var ho3 map[installKey]ledger.Entry // HO3's INSTALLED entries, read when a lower tier's kernel needs them
	for _, t := range ts {
		s, err := t.open()
		if err != nil {
			return nil, err
		}
		installs, err := tierInstalls(ctx, s)
		s.Close()
		if err != nil {
			return nil, err
		}
		if t.layout.PlaneID == "ho3" {
			ho3 = installs
		}
		pkgs, err := tierPackages(t, installs)
		if err != nil {
			return nil, err
		}
		for i := range pkgs {
			p := &pkgs[i]
			if p.InstalledSeq != nil || t.layout.PlaneID == "ho3" || p.PackageType != "kernel" {
				continue
			}
			if ho3 == nil {
				if ho3, err = ho3Installs(ctx, root); err != nil {
					return nil, err
				}
			}
			if e, ok := ho3[installKey{p.PackageID, p.Version, p.ManifestHash}]; ok {
				p.InstalledSeq, p.InstalledEntry, p.InstalledTier = &e.Seq, e.ID, "ho3"
			}
		}
		inv.Tiers = append(inv.Tiers, TierInventory{Tier: t.layout.PlaneID, Packages: pkgs})
	}
	return inv, nil
}

// installKey names an install: package, version and manifest hash.
type installKey struct{ id, version, mh string }

// tierInstalls reads a ledger's INSTALLED entries in one lookup through
// the index (not one a package), the last of each install winning.
func tierInstalls(ctx context.Context, s ledger.Store) (map[installKey]ledger.Entry, error) {
	installs := map[installKey]ledger.Entry{}
	err := s.Find(ctx, ledger.Query{EventTypes: []string{"INSTALLED"}}, func(e *ledger.Entry) bool {
		installs[installKey{e.SubmissionID, str(e.Metadata, "version"), str(e.Metadata, "manifest_hash")}] = *e
		return true
	})
	return installs, err
}

// ho3Installs reads HO3's INSTALLED entries (for an inventory of a lower
// tier alone).
func ho3Installs(ctx context.Context, root string) (map[installKey]ledger.Entry, error) {
	ts, err := tiers(root, "ho3")
	if err != nil {
		return nil, err
	}
	s, err := ts[0].open()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return tierInstalls(ctx, s)
}

func tierPackages(t tier, installs map[installKey]ledger.Entry) ([]Package, error) {
	rows, err := registry.Read(t.dir, registry.Packages)
	if err != nil {
		return nil, err
	}
	out := []Package{}
	for _, r := range rows {
		if r["status"] != registry.StatusInstalled {
			continue
		}
		p := Package{PackageID: r["package_id"], Version: r["version"], ManifestHash: r["manifest_hash"], Signature: r["signature"], WorkOrderID: r["work_order_id"]}
		mb, err := readSized(filepath.Join(t.dir, filepath.FromSlash(plane.ManifestPath(p.PackageID))))
		if err != nil {
			return nil, err
		}
		m, err := summarize(mb)
		if err != nil {
			return nil, &Error{code: "MANIFEST_INVALID", msg: fmt.Sprintf("%s: %v", plane.ManifestPath(p.PackageID), err)}
		}
		p.PackageType, p.SpecID, p.FrameworkID, p.Files = m.PackageType, m.SpecID, m.FrameworkID, m.Assets
		if e, ok := installs[installKey{p.PackageID, p.Version, p.ManifestHash}]; ok {
			p.InstalledSeq, p.InstalledEntry = &e.Seq, e.ID
		}
		out = append(out, p)
	}
	return out, nil
}
