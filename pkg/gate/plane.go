package gate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
	"github.com/control-plane/cp/pkg/plane"
	"github.com/control-plane/cp/pkg/registry"
)

// All names the gates cp-gate check runs, in the order it runs them.
var All = []string{"G0A", "G0B", "G0K", "G1", "G2", "G3", "G5", "G6"}

// ArchiveRules are the install rules an archive is judged by besides its
// gates (preflight's VERSION and OWNERSHIP): with an archive, cp-gate
// check runs them after All, so that a check that passes means the
// install's gates pass too.
var ArchiveRules = []string{"VERSION", "OWNERSHIP"}

// CheckOptions configure Check.
type CheckOptions struct {
	Gates     []string // nil: All
	PlaneID   string   // the tier checked: ho3 (default), ho2 or ho1
	Archive   string   // judge this archive (G0A, G1, G5, and ArchiveRules) instead of the installed packages
	WorkOrder string   // for G2 and G3
	Enforce   bool     // stop at the first gate that fails
	Expect    Expect   // what a piped stage or sign result says of the archive
	Options            // signature switches and archive caps, for an archive
}

// Check runs the chosen gates against the plane whose HO3 root is root, in
// the order of All, and returns their results. Without an archive, G0A, G1
// and G5 re-check every package installed in the tier against what was
// recorded at install: the installed manifest against the receipt (G0A),
// the framework/spec chain against HO3's registries (G1), the kept
// signature or the recorded waiver (G5). G0B judges the tier's governed
// files, G0K and G6 every tier. G2 and G3 judge work orders, which do not
// exist yet: without one they report "not applicable" (details.applicable
// false); given one (--wo) they fail with NOT_EVALUATED.
//
// The error is for a plane that cannot be evaluated (an unreadable
// registry, tier.json or governed-roots file); what is wrong with the plane
// is in the results.
func Check(ctx context.Context, root string, opts CheckOptions) ([]Result, error) {
	order := All
	if opts.Archive != "" {
		order = slices.Concat(All, ArchiveRules)
	}
	gates := opts.Gates
	if len(gates) == 0 {
		gates = order
	}
	for _, g := range gates {
		if !slices.Contains(order, g) && g != "RECEIPTS" {
			return nil, &SourceError{Path: g, Msg: fmt.Sprintf("unknown gate (want one of %v)", order)}
		}
	}
	if opts.PlaneID == "" {
		opts.PlaneID = "ho3"
	}
	tdir, err := plane.Dir(root, opts.PlaneID)
	if err != nil {
		return nil, &SourceError{Path: opts.PlaneID, Msg: err.Error()}
	}
	var rep *Report
	if opts.Archive != "" {
		if rep, err = Preflight(ctx, tdir, Source{Archive: opts.Archive, Expect: opts.Expect}, opts.Options); err != nil {
			return nil, err
		}
	}
	var inst *installed
	var out []Result
	for _, g := range order {
		if !slices.Contains(gates, g) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var r *Result
		if rep != nil && (g == "G0A" || g == "G1" || g == "G5" || slices.Contains(ArchiveRules, g)) {
			for i := range rep.Results {
				if rep.Results[i].Gate == g {
					r = &rep.Results[i]
				}
			}
		} else {
			if inst == nil && (g == "G0A" || g == "G1" || g == "G5") {
				if inst, err = readInstalled(tdir); err != nil {
					return nil, err
				}
			}
			switch g {
			case "G0A":
				r, err = g0aInstalled(tdir, inst)
			case "G0B":
				r, err = G0B(ctx, tdir)
			case "G0K":
				r, err = G0K(root)
			case "G1":
				r, err = g1Installed(root, tdir, inst)
			case "G2", "G3":
				r = workOrderGate(g, opts.WorkOrder)
			case "G5":
				r, err = g5Installed(root, tdir, inst)
			case "G6":
				r, err = G6(ctx, root)
			}
			if err != nil {
				return nil, err
			}
		}
		out = append(out, *r)
		if opts.Enforce && !r.Passed {
			break
		}
	}
	return out, nil
}

// installed is what a tier says is installed: its packages_state rows and,
// for each, the installed manifest and receipt (or why they are unreadable).
type installed struct {
	rows []registry.Row
	pkgs []*installedPkg
}

type installedPkg struct {
	row      registry.Row
	m        *manifest.Manifest
	mhash    string
	receipt  *plane.Receipt
	mErr     error // the installed manifest is unreadable or invalid
	rcptErr  error // the receipt is unreadable or invalid
	manifest string
}

func readInstalled(tdir string) (*installed, error) {
	rows, err := registry.Read(tdir, registry.Packages)
	if err != nil {
		return nil, err
	}
	inst := &installed{rows: rows}
	for _, row := range rows {
		if row["status"] != registry.StatusInstalled {
			continue
		}
		id := row["package_id"]
		p := &installedPkg{row: row, manifest: plane.ManifestPath(id)}
		if b, err := os.ReadFile(filepath.Join(tdir, filepath.FromSlash(p.manifest))); err != nil {
			p.mErr = unwrapPath(err)
		} else if p.m, err = manifest.Parse(b); err != nil {
			p.mErr = err
		} else if p.mhash, err = p.m.Hash(); err != nil {
			p.mErr = err
		}
		p.receipt, p.rcptErr = plane.ReadReceipt(tdir, id)
		if p.rcptErr != nil {
			p.rcptErr = unwrapPath(p.rcptErr)
		}
		inst.pkgs = append(inst.pkgs, p)
	}
	return inst, nil
}

// unwrapPath drops the absolute path from a file error's message: findings
// may be written to a ledger.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// g0aInstalled re-checks each installed package's declaration: its
// installed manifest hashes to the recorded manifest hash, and declares
// exactly the files its receipt lists, with their sizes and hashes, at safe
// governed paths.
func g0aInstalled(tdir string, inst *installed) (*Result, error) {
	r := newResult("G0A")
	roots, err := GovernedRoots(tdir)
	if err != nil {
		return nil, err
	}
	for _, p := range inst.pkgs {
		id := p.row["package_id"]
		switch {
		case p.mErr != nil:
			r.fail("MANIFEST_INVALID", p.manifest, "%s: %v", id, p.mErr)
			continue
		case p.rcptErr != nil:
			r.fail("RECEIPT_INVALID", plane.ReceiptPath(id), "%s: %v", id, p.rcptErr)
			continue
		case p.mhash != p.row["manifest_hash"]:
			r.fail("HASH_MISMATCH", p.manifest, "%s: the installed manifest hashes to %s, packages_state.csv records %s", id, p.mhash, p.row["manifest_hash"])
		case p.m.PackageID != id:
			r.fail("MANIFEST_INVALID", p.manifest, "%s: the installed manifest declares %s", id, p.m.PackageID)
		}
		files := make(map[string]File, len(p.receipt.Files))
		for _, f := range p.receipt.Files {
			files[f.Path] = File{SHA256: f.SHA256, Size: f.Size}
		}
		one := newResult("G0A")
		declaration(one, roots, p.m, files)
		for _, e := range one.Errors {
			r.fail(e.Code, e.Path, "%s: %s", id, e.Message)
		}
	}
	r.Details["packages"] = len(inst.pkgs)
	return r.done("every installed package declares exactly the files its receipt lists, at governed paths"), nil
}

// g1Installed re-checks every installed package's framework/spec chain
// against HO3's registries and the tier's installed packages.
func g1Installed(root, tdir string, inst *installed) (*Result, error) {
	r := newResult("G1")
	l, err := loadLaw(root, tdir)
	if err != nil {
		return nil, err
	}
	for _, p := range inst.pkgs {
		if p.m == nil {
			r.fail("MANIFEST_INVALID", p.manifest, "%s: %v", p.row["package_id"], p.mErr)
			continue
		}
		l.check(r, p.m, p.m.PackageID+": ")
	}
	r.Details["packages"] = len(inst.pkgs)
	return r.done("every installed package's spec and framework are registered and active, its assets within its spec, its dependencies installed"), nil
}

// g5Installed re-checks every installed package's signature: a package
// recorded as "signed:<key>" must have its signature kept in
// packages_store/ and it must verify, by that key, against the recorded
// package id, version, manifest hash and archive hash and the tier's
// trusted keys; a package recorded as "waived" must have its waiver in a
// ledger (an INSTALLED entry carrying weakened_control).
func g5Installed(root, tdir string, inst *installed) (*Result, error) {
	r := newResult("G5")
	trusted, err := pkgsig.LoadTrusted(tdir)
	if err != nil {
		return nil, err
	}
	vs, err := pkgsig.Verifiers(trusted, pkgsig.PurposePackage, "")
	if err != nil {
		return nil, err
	}
	var waivers map[string]bool
	signed, waived := 0, 0
	for _, p := range inst.pkgs {
		id, version := p.row["package_id"], p.row["version"]
		sig := p.row["signature"]
		if sig == registry.SignatureWaived {
			if waivers == nil {
				if waivers, err = recordedWaivers(root, tdir); err != nil {
					return nil, err
				}
			}
			if !waivers[id+"@"+version] {
				r.fail("WAIVER_UNRECORDED", id, "%s %s is recorded as installed unsigned, but no ledger records the waiver", id, version)
			}
			waived++
			continue
		}
		key := strings.TrimPrefix(sig, "signed:")
		store := plane.StorePath(id, version) + ".sig"
		b, err := os.ReadFile(filepath.Join(tdir, filepath.FromSlash(store)))
		if errors.Is(err, fs.ErrNotExist) {
			r.fail("SIGNATURE_MISSING", store, "%s %s is recorded as signed by %s, but its signature is not kept", id, version, key)
			continue
		} else if err != nil {
			return nil, err
		}
		stmt := pkgsig.Statement{PackageID: id, Version: version, ManifestHash: p.row["manifest_hash"], ArchiveHash: p.row["archive_sha256"]}
		name, err := pkgsig.Verify(b, stmt, vs)
		var se *pkgsig.Error
		switch {
		case errors.As(err, &se):
			r.fail(se.Code(), store, "%s %s: %s", id, version, se.Error())
		case err != nil:
			return nil, err
		case name != key:
			r.fail("SIGNATURE_INVALID", store, "%s %s is recorded as signed by %s; its signature is by %s", id, version, key, name)
		default:
			signed++
		}
	}
	r.Details["signed"], r.Details["waived"] = signed, waived
	return r.done("every installed package's signature verifies by a trusted key, or its waiver is recorded"), nil
}

// recordedWaivers returns "id@version" for every INSTALLED entry with a
// weakened_control in the tier's ledger and HO3's.
func recordedWaivers(root, tdir string) (map[string]bool, error) {
	out := map[string]bool{}
	dirs := []string{tdir}
	if tdir != root {
		dirs = append(dirs, root)
	}
	for _, d := range dirs {
		t, err := plane.ReadTier(d)
		if err != nil {
			return nil, err
		}
		err = eachEntry(filepath.Join(d, filepath.FromSlash(t.LedgerPath)), func(e *ledger.Entry) bool {
			if e.EventType == "INSTALLED" && e.Metadata["weakened_control"] != nil {
				id, _ := e.Metadata["package_id"].(string)
				v, _ := e.Metadata["version"].(string)
				out[id+"@"+v] = true
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// eachEntry calls fn on every entry of the ledger at path until fn returns
// false. Lines that do not parse are skipped: G6 judges the ledger itself.
func eachEntry(path string, fn func(*ledger.Entry) bool) error {
	return ledger.Lines(path, func(line []byte) bool {
		e, err := ledger.ParseLine(line)
		return err != nil || fn(e)
	})
}

// G0K checks kernel parity: the kernel package is installed on HO3, HO2 and
// HO1 with one manifest hash, and each tier's installed manifest hashes to
// what its packages_state.csv records.
func G0K(root string) (*Result, error) {
	r := newResult("G0K")
	hashes := map[string]string{}
	for _, t := range plane.Layout {
		tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
		mpath := filepath.ToSlash(filepath.Join(t.Dir, plane.ManifestPath(plane.KernelID)))
		rows, err := registry.Read(tdir, registry.Packages)
		if err != nil {
			return nil, err
		}
		row := find(rows, "package_id", plane.KernelID)
		if row == nil || row["status"] != registry.StatusInstalled {
			r.fail("KERNEL_MISSING", t.PlaneID, "%s is not installed on %s", plane.KernelID, t.Tier)
			continue
		}
		b, err := os.ReadFile(filepath.Join(tdir, filepath.FromSlash(plane.ManifestPath(plane.KernelID))))
		if err != nil {
			r.fail("KERNEL_MISSING", mpath, "%v", unwrapPath(err))
			continue
		}
		m, err := manifest.Parse(b)
		if err != nil {
			r.fail("MANIFEST_INVALID", mpath, "%v", err)
			continue
		}
		h, err := m.Hash()
		if err != nil {
			return nil, err
		}
		if h != row["manifest_hash"] {
			r.fail("HASH_MISMATCH", mpath, "hashes to %s; %s's packages_state.csv records %s", h, t.Tier, row["manifest_hash"])
		}
		hashes[t.PlaneID] = h
		if ho3, ok := hashes["ho3"]; ok && t.PlaneID != "ho3" && h != ho3 {
			r.fail("KERNEL_MISMATCH", mpath, "%s's kernel manifest %s differs from HO3's %s", t.Tier, h, ho3)
		}
	}
	r.Details["manifest_hashes"] = hashes
	return r.done("the kernel's manifest hash is identical on HO3, HO2 and HO1"), nil
}

// G6 checks every ledger of every tier with the ledger library (lines,
// links, Merkle tree, stored hashes, checkpoint signatures against the
// tier's keys trusted for checkpoints), session ledgers under HO1 included,
// and that each lower tier's GENESIS records its parent ledger's head at
// creation: parent_ledger names the parent's ledger and parent_hash is the
// hash of its entry parent_size-1.
func G6(ctx context.Context, root string) (*Result, error) {
	r := newResult("G6")
	n := 0
	for _, t := range plane.Layout {
		tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
		tier, err := plane.ReadTier(tdir)
		if err != nil {
			return nil, err
		}
		trusted, err := pkgsig.LoadTrusted(tdir)
		if err != nil {
			return nil, err
		}
		vs, err := pkgsig.Verifiers(trusted, pkgsig.PurposeCheckpoint, "")
		if err != nil {
			return nil, err
		}
		paths := []string{filepath.ToSlash(filepath.Join(t.Dir, tier.LedgerPath))}
		if t.PlaneID == "ho1" {
			sessions, _ := filepath.Glob(filepath.Join(tdir, "sessions", "*", "ledger", "*.jsonl"))
			for _, s := range sessions {
				rel, err := filepath.Rel(root, s)
				if err != nil {
					return nil, err
				}
				paths = append(paths, filepath.ToSlash(rel))
			}
		}
		for i, p := range paths {
			n++
			// The tier's own ledger carries its plane's signed checkpoint
			// (a tier with a plane_name signs one with every append):
			// a missing, unsigned or contradicted one is a finding.
			expect := i == 0 && tier.PlaneName != ""
			rep, err := ledger.Verify(ctx, filepath.Join(root, filepath.FromSlash(p)), ledger.VerifyOptions{Verifiers: vs, Expect: expect, MaxIssues: 10})
			if errors.Is(err, fs.ErrNotExist) {
				r.fail("LEDGER_INVALID", p, "missing")
				continue
			} else if err != nil {
				return nil, err
			}
			for _, is := range rep.Issues {
				r.fail("LEDGER_INVALID", p, "seq %d: %s: %s", is.Seq, is.Code, is.Message)
			}
		}
		if t.Parent != "" {
			if err := genesisLink(r, root, t, tier); err != nil {
				return nil, err
			}
		}
	}
	r.Details["ledgers"] = n
	return r.done("every ledger of every tier verifies, and each lower tier's GENESIS links to its parent"), nil
}

// genesisLink checks that tier t's first entry is a GENESIS recording its
// parent ledger's head at creation.
func genesisLink(r *Result, root string, t plane.TierLayout, tier plane.Tier) error {
	path := filepath.ToSlash(filepath.Join(t.Dir, tier.LedgerPath))
	var g *ledger.Entry
	if err := eachEntry(filepath.Join(root, filepath.FromSlash(path)), func(e *ledger.Entry) bool { g = e; return false }); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // reported by the verify above
		}
		return err
	}
	if g == nil || g.EventType != "GENESIS" {
		r.fail("GENESIS_MISSING", path, "the first entry of %s's ledger is not a GENESIS", t.Tier)
		return nil
	}
	parent, _ := g.Metadata["parent_ledger"].(string)
	want, _ := g.Metadata["parent_hash"].(string)
	size, ok := intOf(g.Metadata["parent_size"])
	if parent != t.Parent || tier.ParentLedger == nil || *tier.ParentLedger != t.Parent || !ok || size < 1 {
		r.fail("GENESIS_UNLINKED", path, "GENESIS names parent %q (size %v), tier.json %v; want %s", parent, g.Metadata["parent_size"], tier.ParentLedger, t.Parent)
		return nil
	}
	var at *ledger.Entry
	i := int64(0)
	err := eachEntry(filepath.Join(root, filepath.FromSlash(parent)), func(e *ledger.Entry) bool {
		if i == size-1 {
			at = e
			return false
		}
		i++
		return true
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if at == nil || at.EntryHash != want {
		got := "<none>"
		if at != nil {
			got = at.EntryHash
		}
		r.fail("GENESIS_UNLINKED", path, "GENESIS records parent head %s at size %d; %s holds %s there", want, size, parent, got)
	}
	return nil
}

func intOf(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		return int64(n), n == float64(int64(n))
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// workOrderGate is G2 or G3 until work orders exist. Without a work order
// it does not apply and says so (details.applicable false), never a silent
// pass. Asked to judge a work order it cannot judge, it fails closed:
// NOT_EVALUATED, so that no pipeline takes "--wo W" for a checked W.
func workOrderGate(g, wo string) *Result {
	r := newResult(g)
	r.Details["applicable"] = false
	what := map[string]string{"G2": "approval, payload and scope", "G3": "dependency constraints"}[g]
	if wo == "" {
		r.Message = "not applicable: no work order given (--wo WO-ID); " + g + " judges a work order's " + what
		return r.done("")
	}
	r.Details["work_order_id"] = wo
	r.fail("NOT_EVALUATED", wo, "work orders are not built yet: %s's %s cannot be judged, so %s does not pass", wo, what, g)
	return r.done("")
}
