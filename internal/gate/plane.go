package gate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/internal/workorder"
	"github.com/control-plane/cp/pkg/ledger"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
	"golang.org/x/mod/sumdb/note"
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
// files, G0K and G6 every tier. G2 and G3 judge the work order opts.WorkOrder
// (checkWorkOrder): without one, and without an archive, they report "not
// applicable" (details.applicable false).
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
	var wo map[string]*Result // G2 and G3, judged together
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
				if wo == nil {
					if wo, err = checkWorkOrder(ctx, root, tdir, opts); err != nil {
						return nil, err
					}
				}
				r = wo[g]
			case "G5":
				r, err = g5Installed(ctx, root, tdir, inst)
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
		if b, err := regfile.ReadNoFollow(filepath.Join(tdir, filepath.FromSlash(p.manifest))); err != nil {
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
// receipt agrees with its packages_state.csv row (receiptDisagrees), its
// installed manifest hashes to the recorded manifest hash, and declares
// exactly the files its receipt lists, with their sizes and hashes, at safe
// governed paths.
func g0aInstalled(tdir string, inst *installed) (*Result, error) {
	r := newResult("G0A")
	roots, err := plane.GovernedRoots(tdir)
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
		case receiptDisagrees(p.receipt, p.row) != "":
			r.fail("RECEIPT_MISMATCH", plane.ReceiptPath(id), "%s: %s", id, receiptDisagrees(p.receipt, p.row))
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
		configRule(one, p.m)
		receiptModes(one, p.m, p.receipt)
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
// ledger (recordedWaivers).
func g5Installed(ctx context.Context, root, tdir string, inst *installed) (*Result, error) {
	r := newResult("G5")
	trusted, err := trust.Load(tdir)
	if err != nil {
		return nil, err
	}
	vs, err := trust.Verifiers(trusted, trust.PurposePackage, "")
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
				if waivers, err = recordedWaivers(ctx, root, tdir); err != nil {
					return nil, err
				}
			}
			if !waivers[waiverKey(id, version, p.row["manifest_hash"], p.row["archive_sha256"])] {
				r.fail("WAIVER_UNRECORDED", id, "%s %s is recorded as installed unsigned, but no ledger records its waiver beside the install that made it (INSTALL_STARTED and INSTALLED of one op_id, with these hashes)", id, version)
			}
			waived++
			continue
		}
		if ok, err := keptSignature(r, tdir, p.row, vs); err != nil {
			return nil, err
		} else if ok {
			signed++
		}
	}
	r.Details["signed"], r.Details["waived"] = signed, waived
	return r.done("every installed package's signature verifies by a trusted key, or its waiver is recorded"), nil
}

// keptSignature checks the package of row, recorded "signed:<key>": its
// signature is kept beside its archive in packages_store/ and verifies, by
// that key among vs, against the recorded package id, version, manifest
// hash and archive hash. It adds what is wrong to r and reports whether
// the signature held.
func keptSignature(r *Result, tdir string, row registry.Row, vs note.Verifiers) (bool, error) {
	id, version := row["package_id"], row["version"]
	key := strings.TrimPrefix(row["signature"], "signed:")
	store := plane.StorePath(id, version) + ".sig"
	b, err := regfile.ReadNoFollow(filepath.Join(tdir, filepath.FromSlash(store)))
	if errors.Is(err, fs.ErrNotExist) {
		r.fail("SIGNATURE_MISSING", store, "%s %s is recorded as signed by %s, but its signature is not kept", id, version, key)
		return false, nil
	} else if err != nil {
		r.fail("SIGNATURE_INVALID", store, "%s %s: %v", id, version, unwrapPath(err))
		return false, nil
	}
	stmt := pkgsig.Statement{PackageID: id, Version: version, ManifestHash: row["manifest_hash"], ArchiveHash: row["archive_sha256"]}
	name, err := pkgsig.Verify(b, stmt, vs)
	var se *pkgsig.Error
	switch {
	case errors.As(err, &se):
		r.fail(se.Code(), store, "%s %s: %s", id, version, se.Error())
	case err != nil:
		return false, err
	case name != key:
		r.fail("SIGNATURE_INVALID", store, "%s %s is recorded as signed by %s; its signature is by %s", id, version, key, name)
	default:
		return true, nil
	}
	return false, nil
}

// recordedWaivers returns the waivers recorded in the tier's ledger and
// HO3's, keyed by waiverKey. A waiver is an INSTALLED entry with a
// weakened_control that stands beside its own operation: an INSTALL_STARTED
// earlier in the same ledger with the same op_id, package, version,
// manifest hash and archive hash (DESIGN.md §8). cp-ledger append refuses
// both types, so an entry appended by hand never counts; nor does a lone
// INSTALLED, or one whose hashes differ from its operation's.
func recordedWaivers(ctx context.Context, root, tdir string) (map[string]bool, error) {
	out := map[string]bool{}
	dirs := []string{tdir}
	if tdir != root {
		dirs = append(dirs, root)
	}
	for _, d := range dirs {
		l, _, err := plane.OpenLedger(d, plane.ForReading, plane.Actor{})
		if err != nil {
			return nil, err
		}
		started := map[string]string{} // op_id → waiverKey of its INSTALL_STARTED
		err = l.Find(ctx, ledger.Query{EventTypes: []string{"INSTALL_STARTED", "INSTALLED"}}, func(e *ledger.Entry) bool {
			op, _ := e.Metadata["op_id"].(string)
			switch {
			case op == "":
			case e.EventType == "INSTALL_STARTED":
				if _, dup := started[op]; !dup { // an operation starts once
					started[op] = entryWaiverKey(e)
				}
			case e.EventType == "INSTALLED" && e.Metadata["weakened_control"] != nil:
				if k, ok := started[op]; ok && k == entryWaiverKey(e) {
					out[k] = true
				}
			}
			return true
		})
		l.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// waiverKey is what a waiver waives: one package version's exact bytes.
func waiverKey(id, version, manifestHash, archiveHash string) string {
	return id + "@" + version + " " + manifestHash + " " + archiveHash
}

func entryWaiverKey(e *ledger.Entry) string {
	s := func(k string) string { v, _ := e.Metadata[k].(string); return v }
	return waiverKey(s("package_id"), s("version"), s("manifest_hash"), s("archive_sha256"))
}

// entryAt returns the entry at seq of the ledger file at path (a path of
// the canonical layout: G6 judges the files there, whatever tier.json
// says), or nil when it holds no such line or the line does not parse: G6
// judges the ledger itself.
func entryAt(ctx context.Context, path string, seq int64) (*ledger.Entry, error) {
	l, err := ledger.OpenFileStore(path)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var e *ledger.Entry
	err = l.Lines(ctx, seq, seq+1, func(_ int64, line []byte) bool {
		if p, err := ledger.ParseLine(line); err == nil {
			e = p
		}
		return false
	})
	return e, err
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
		b, err := regfile.ReadNoFollow(filepath.Join(tdir, filepath.FromSlash(plane.ManifestPath(plane.KernelID))))
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
// tier's keys trusted for checkpoints), and the tiers themselves:
//
//   - which files are ledgers: every *.jsonl in a tier's ledger/ directory
//     (ledger/, planes/ho2/ledger/, planes/ho1/ledger/) and in each HO1
//     session's sessions/<id>/ledger/. Nothing else in a tier is a ledger,
//     and nothing else may sit in a ledger directory: beside a ledger X.jsonl
//     only its side files (ledger.SideFiles) and the leftovers of an
//     interrupted atomic write (a warning); anything else is LEDGER_STRAY,
//     and a symlink, FIFO or directory there is LEDGER_UNSAFE (never
//     opened);
//   - tier.json: it parses (else TIER_INVALID), agrees with the canonical
//     layout (tier, plane_id, ledger_path, parent_ledger; else
//     TIER_MISMATCH: a ledger_path moved to a fresh ledger is one), and
//     hashes to what the tier's GENESIS recorded when it was made (else
//     TIER_UNRECORDED);
//   - each lower tier's GENESIS records its parent ledger's head at
//     creation: parent_ledger names the parent's ledger and parent_hash is
//     the hash of its entry parent_size-1;
//   - each lower-tier ledger holds what every CHECKPOINT_ANCHORED of it
//     in its parent's ledger anchored (anchorFindings).
func G6(ctx context.Context, root string) (*Result, error) {
	r := newResult("G6")
	n := 0
	var all []string // every ledger, for the auth-off warnings
	tiers := map[string]plane.Tier{}
	for _, t := range plane.Layout {
		tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
		tier := checkTier(ctx, r, root, t)
		tiers[t.PlaneID] = tier
		trusted, err := trust.Load(tdir)
		if err != nil {
			return nil, err
		}
		vs, err := trust.Verifiers(trusted, trust.PurposeCheckpoint, "")
		if err != nil {
			return nil, err
		}
		// A ledger in PostgreSQL keeps its checkpoints outside the
		// database too, in ledger/<name>.checkpoint (and its lock).
		outside := map[string]bool{}
		if t.PlaneID == "ho3" {
			// The lock cp-route reads and spends a limited session's
			// count under (plane.HoldKey).
			outside[path.Join(t.Dir, "ledger", RouteLockFile)] = true
		}
		if t.PlaneID == "ho2" {
			// HO2's ledger is the LLM gateway's budget ledger: its
			// directory also holds the gateway's lock files.
			for _, name := range GatewayLockFiles {
				outside[path.Join(t.Dir, "ledger", name)] = true
			}
		}
		if tier.Postgres() {
			ck := path.Join(t.Dir, "ledger", tier.LedgerStore.Name+".checkpoint")
			outside[ck], outside[ck+".lock"] = true, true
			// A tier moved there by cp-ledger migrate keeps its file
			// ledger's checkpoint and lock: no writer can start an empty
			// ledger in its place.
			base := strings.TrimSuffix(path.Join(t.Dir, t.Ledger), ".jsonl")
			outside[base+".checkpoint"], outside[base+".lock"] = true, true
		}
		paths, err := ledgerFiles(r, root, t, outside)
		if err != nil {
			return nil, err
		}
		all = append(all, paths...)
		own := path.Join(t.Dir, t.Ledger)
		if tier.Postgres() {
			n++
			if err := verifyPostgres(ctx, r, tdir, tier, vs); err != nil {
				return nil, err
			}
		} else if !slices.Contains(paths, own) {
			r.fail("LEDGER_INVALID", own, "missing: %s's ledger is not on disk", t.Tier)
		}
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			n++
			// Every ledger of a tier carries its plane's signed
			// checkpoint (a tier with a plane_name signs one with every
			// append, through --plane or --ledger alike): a missing,
			// unsigned or contradicted one is a finding.
			expect := tier.PlaneName != ""
			rep, err := verifyFile(ctx, filepath.Join(root, filepath.FromSlash(p)), ledger.VerifyOptions{Verifiers: vs, Expect: expect, MaxIssues: 10})
			if errors.Is(err, fs.ErrNotExist) {
				r.fail("LEDGER_INVALID", p, "missing")
				continue
			} else if err != nil {
				var coded interface{ Code() string }
				if errors.As(err, &coded) {
					r.fail("LEDGER_INVALID", p, "%s: %v", coded.Code(), unwrapPath(err))
					continue
				}
				return nil, err
			}
			for _, is := range rep.Issues {
				r.fail("LEDGER_INVALID", p, "seq %d: %s: %s", is.Seq, is.Code, is.Message)
			}
		}
		if err := genesisLink(ctx, r, root, t, tier); err != nil {
			return nil, err
		}
	}
	r.Details["ledgers"] = n
	anchors, err := anchorFindings(ctx, r, root, tiers)
	if err != nil {
		return nil, err
	}
	r.Details["anchors"] = anchors
	ho3 := plane.Layout[0]
	if err := authOffFindings(ctx, r, root, path.Join(ho3.Dir, ho3.Ledger), all); err != nil {
		return nil, err
	}
	return r.done("every ledger of every tier verifies, each tier.json is the one its GENESIS recorded, each lower tier's GENESIS links to its parent, and each lower-tier ledger extends every anchor of it"), nil
}

// verifyPostgres verifies tier's own ledger in PostgreSQL, opened by the
// plane's opener, against its checkpoints (the latest of the database's
// and the copy outside it). A database that cannot be reached is the
// gate's error (LEDGER_UNAVAILABLE, exit 4), never a pass.
func verifyPostgres(ctx context.Context, r *Result, tdir string, tier plane.Tier, vs note.Verifiers) error {
	s, err := plane.OpenTierLedger(tdir, tier, plane.LedgerPath(tdir, tier), plane.ForReading, plane.Actor{})
	what := "postgres:" + tier.LedgerStore.Name
	if errors.Is(err, fs.ErrNotExist) {
		r.fail("LEDGER_INVALID", what, "missing: %s's ledger is not in the database", tier.Tier)
		return nil
	} else if err != nil {
		return err
	}
	defer s.Close()
	rep, err := ledger.Verify(ctx, s, ledger.VerifyOptions{Verifiers: vs, Expect: tier.PlaneName != "", MaxIssues: 10})
	if err != nil {
		return err
	}
	for _, is := range rep.Issues {
		r.fail("LEDGER_INVALID", what, "seq %d: %s: %s", is.Seq, is.Code, is.Message)
	}
	return nil
}

// verifyFile verifies the ledger file at path: G6 audits the files of the
// canonical layout, whatever tier.json says, so it opens each as a file
// store of its own rather than through the plane's opener.
func verifyFile(ctx context.Context, path string, opts ledger.VerifyOptions) (ledger.Report, error) {
	s, err := ledger.OpenFileStore(path)
	if err != nil {
		return ledger.Report{}, err
	}
	defer s.Close()
	return ledger.Verify(ctx, s, opts)
}

// ledgerFiles returns the ledgers of tier t (paths relative to root,
// sorted) and adds a finding for anything else in its ledger directories.
// Entries are judged by their directory listing (lstat), so a FIFO or a
// symlink is reported without being opened.
func ledgerFiles(r *Result, root string, t plane.TierLayout, outside map[string]bool) ([]string, error) {
	dirs := []string{path.Join(t.Dir, "ledger")}
	if t.PlaneID == "ho1" {
		sessions := path.Join(t.Dir, "sessions")
		var entries []fs.DirEntry
		if fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(sessions))); err == nil && !fi.IsDir() {
			r.fail("LEDGER_UNSAFE", sessions, "a %s where the session directories belong", kindOf(fi.Mode().Type()))
		} else if entries, err = os.ReadDir(filepath.Join(root, filepath.FromSlash(sessions))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			switch {
			case e.IsDir():
				dirs = append(dirs, path.Join(sessions, e.Name(), "ledger"))
			case e.Type().IsRegular():
				r.fail("LEDGER_STRAY", path.Join(sessions, e.Name()), "a file where session directories live")
			default:
				r.fail("LEDGER_UNSAFE", path.Join(sessions, e.Name()), "a %s where session directories live", kindOf(e.Type()))
			}
		}
	}
	var out []string
	for _, d := range dirs {
		if fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(d))); err == nil && !fi.IsDir() {
			r.fail("LEDGER_UNSAFE", d, "a %s where a ledger directory belongs", kindOf(fi.Mode().Type()))
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(d)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a session whose ledger is not made yet; the tier's own is required by G6
		} else if err != nil {
			return nil, err
		}
		ledgers := map[string]bool{}
		for _, e := range entries {
			if base, ok := strings.CutSuffix(e.Name(), ".jsonl"); ok && e.Type().IsRegular() && base != "" {
				ledgers[base] = true
				out = append(out, path.Join(d, e.Name()))
			}
		}
		for _, e := range entries {
			p := path.Join(d, e.Name())
			base, side := sideOf(e.Name())
			switch {
			case !e.Type().IsRegular():
				r.fail("LEDGER_UNSAFE", p, "a %s in a ledger directory; ledgers and their side files are regular files", kindOf(e.Type()))
			case ledgers[strings.TrimSuffix(e.Name(), ".jsonl")] && strings.HasSuffix(e.Name(), ".jsonl"):
			case side && ledgers[base]:
			case outside[p] && e.Type().IsRegular():
			case t.PlaneID == "ho2" && d == path.Join(t.Dir, "ledger") && WOTallyFile(e.Name()) && e.Type().IsRegular():
			case strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-"):
				r.warn("LEDGER_LEFTOVER", p, "the leftover of an interrupted write; safe to remove")
			case side:
				r.fail("LEDGER_STRAY", p, "the side file of a ledger %s.jsonl that is not there", base)
			default:
				r.fail("LEDGER_STRAY", p, "not a ledger (*.jsonl) or a ledger's side file (%s)", strings.Join(ledger.SideFiles, " "))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// GatewayLockFiles are the lock files the LLM gateway keeps in HO2's
// ledger directory (internal/llm): llm-inflight.lock, whose byte-range
// locks mark reservations in flight, and llm-budget.lock, the budget's
// lock for a tier in PostgreSQL (older gateways), llm-tally.json, the
// caps' sums as of a tree the gateway checks before it believes them, and
// llm-created.json, the first WO_CREATED of each work order, read by a
// work-order tally begun from nothing. Regular files, never ledgers.
var GatewayLockFiles = []string{"llm-inflight.lock", "llm-budget.lock", "llm-tally.json", "llm-created.json"}

// WOTallyFile reports whether name is that of a work-order tally the LLM
// gateway keeps in HO2's ledger directory (internal/llm, wotally.go):
// llm-wo.<WO-ID>.json, one work order's budget sums as of a tree the
// gateway checks before it believes them. Regular files, never ledgers.
func WOTallyFile(name string) bool {
	id, ok := strings.CutPrefix(name, "llm-wo.")
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, ".json")
	return ok && workorder.ValidID(id)
}

// RouteLockFile is the lock file cp-route keeps in HO3's ledger directory
// (internal/routecmd, plane.HoldKey): a limited session's count, across
// every tier, is read and spent under it. A regular file, never a ledger.
const RouteLockFile = "route-session.lock"

// sideOf returns the ledger base name of a side file's name.
func sideOf(name string) (string, bool) {
	for _, s := range ledger.SideFiles {
		if base, ok := strings.CutSuffix(name, s); ok && base != "" {
			return base, true
		}
	}
	return "", false
}

// checkTier reads tier t's tier.json and adds a finding when it does not
// parse, differs from the canonical layout, or is not the file the tier's
// GENESIS recorded. It returns the tier as the layout has it: G6 goes on to
// verify the canonical ledgers whatever tier.json says.
func checkTier(ctx context.Context, r *Result, root string, t plane.TierLayout) plane.Tier {
	var parent *string
	if t.Parent != "" {
		p := t.Parent
		parent = &p
	}
	want := plane.Tier{Tier: t.Tier, PlaneID: t.PlaneID, LedgerPath: t.Ledger, ParentLedger: parent}
	tp := path.Join(t.Dir, "tier.json")
	tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
	got, err := plane.ReadTier(tdir)
	if err != nil {
		r.fail("TIER_INVALID", tp, "%s", strings.ReplaceAll(unwrapPath(err).Error(), root+string(filepath.Separator), ""))
		return want
	}
	// plane_name is the plane's own (no layout fixes it); dropping it to
	// spare a ledger its checkpoint is TIER_UNRECORDED below.
	want.PlaneName = got.PlaneName
	// Where the tier's ledger lives (DESIGN.md §11) is tier.json's too:
	// G6 verifies a ledger in PostgreSQL through the plane's opener.
	want.LedgerStore = got.LedgerStore
	if got.Tier != want.Tier || got.PlaneID != want.PlaneID || filepath.ToSlash(filepath.Clean(got.LedgerPath)) != want.LedgerPath ||
		(got.ParentLedger == nil) != (parent == nil) || (parent != nil && *got.ParentLedger != *parent) {
		r.fail("TIER_MISMATCH", tp, "says tier %s, plane_id %s, ledger_path %s, parent_ledger %v; the plane's layout has %s, %s, %s, %v",
			got.Tier, got.PlaneID, got.LedgerPath, strOrNull(got.ParentLedger), want.Tier, want.PlaneID, want.LedgerPath, strOrNull(parent))
	}
	b, err := regfile.ReadNoFollow(filepath.Join(tdir, "tier.json"))
	if err != nil {
		r.fail("TIER_INVALID", tp, "%v", unwrapPath(err))
		return want
	}
	rec, err := recordedTier(ctx, root, t, got)
	if err != nil {
		return want // the ledger's own findings say why
	}
	if rec == nil {
		r.fail("TIER_UNRECORDED", tp, "hashes to %s; %s's ledger records no tier.json (no GENESIS at seq 0, no move or import since)", plane.SHA256(b), t.Tier)
		return want
	}
	if h, _ := rec.Metadata["tier_sha256"].(string); h != plane.SHA256(b) {
		if rec.EventType == "GENESIS" {
			r.fail("TIER_UNRECORDED", tp, "hashes to %s; %s's GENESIS recorded %q when the tier was made", plane.SHA256(b), t.Tier, h)
		} else {
			r.fail("TIER_UNRECORDED", tp, "hashes to %s; %s's ledger recorded %q at seq %d (%s): a tier.json changed by hand, or a move not finished (run the same cp-ledger migrate again)", plane.SHA256(b), t.Tier, h, rec.Seq, rec.EventType)
		}
	}
	return want
}

// recordedTier returns the entry of tier t's ledger that records the
// tier.json in force: its GENESIS, or the last move or import since
// (LEDGER_MIGRATED, LEDGER_IMPORTED, reserved to cp-ledger). nil when
// the ledger has none (its own findings say why).
func recordedTier(ctx context.Context, root string, t plane.TierLayout, tier plane.Tier) (*ledger.Entry, error) {
	s, err := tierStore(root, t, tier)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if st, err := s.State(ctx); err != nil || st.Size == 0 {
		return nil, cmp.Or(err, fs.ErrNotExist) // an empty ledger: its own finding
	}
	var rec *ledger.Entry
	err = s.Find(ctx, ledger.Query{EventTypes: []string{"GENESIS", "LEDGER_MIGRATED", "LEDGER_IMPORTED"}}, func(e *ledger.Entry) bool {
		if e.EventType != "GENESIS" || e.Seq == 0 {
			rec = e
		}
		return true
	})
	return rec, err
}

// tierStore opens tier t's own ledger for reading: the file of the
// canonical layout (G6 audits those files, whatever tier.json says), or,
// for a tier whose tier.json puts it in PostgreSQL, the database ledger
// through the plane's opener.
func tierStore(root string, t plane.TierLayout, tier plane.Tier) (ledger.Store, error) {
	tdir := filepath.Join(root, filepath.FromSlash(t.Dir))
	if tier.Postgres() {
		return plane.OpenTierLedger(tdir, tier, plane.LedgerPath(tdir, tier), plane.ForReading, plane.Actor{})
	}
	return ledger.OpenFileStore(filepath.Join(root, filepath.FromSlash(path.Join(t.Dir, t.Ledger))))
}

// tierEntryAt returns the entry at seq of the ledger of the tier whose
// canonical ledger path (relative to root) is ledgerPath, read where its
// tier.json puts it; nil if there is none.
func tierEntryAt(ctx context.Context, root, ledgerPath string, seq int64) (*ledger.Entry, error) {
	for _, t := range plane.Layout {
		if path.Join(t.Dir, t.Ledger) != ledgerPath {
			continue
		}
		tier, err := plane.ReadTier(filepath.Join(root, filepath.FromSlash(t.Dir)))
		if err != nil || !tier.Postgres() {
			break
		}
		s, err := tierStore(root, t, tier)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		var e *ledger.Entry
		err = s.Lines(ctx, seq, seq+1, func(_ int64, line []byte) bool {
			if p, err := ledger.ParseLine(line); err == nil {
				e = p
			}
			return false
		})
		return e, err
	}
	return entryAt(ctx, filepath.Join(root, filepath.FromSlash(ledgerPath)), seq)
}

func strOrNull(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}

// genesisLink checks that tier t's first entry is a GENESIS recording its
// parent ledger's head at creation.
func genesisLink(ctx context.Context, r *Result, root string, t plane.TierLayout, tier plane.Tier) error {
	if t.Parent == "" {
		return nil
	}
	path := filepath.ToSlash(filepath.Join(t.Dir, tier.LedgerPath))
	g, err := tierEntryAt(ctx, root, path, 0)
	if err != nil {
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
	at, err := tierEntryAt(ctx, root, parent, size-1)
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

// checkWorkOrder is G2 and G3 for cp-gate check. With an archive they
// judge its install under opts.WorkOrder as cp-install would
// (InstallAction: governance, paths, dependencies). Without one, G2
// judges the work order's approval alone (nothing is touched: no path to
// judge, no work order required) and G3 does not apply.
func checkWorkOrder(ctx context.Context, root, tdir string, opts CheckOptions) (map[string]*Result, error) {
	if opts.Archive == "" {
		g2, _, err := G2(ctx, root, WOAction{WorkOrder: opts.WorkOrder})
		if err != nil {
			return nil, err
		}
		g3 := newResult("G3")
		g3.Details["applicable"] = false
		g3.Message = "not applicable: no archive given (--archive A): no dependency change to judge"
		if opts.WorkOrder == "" {
			g3.Message = "not applicable: no work order given (--wo WO-ID); G3 judges a work order's dependency constraints"
		}
		return map[string]*Result{"G2": g2, "G3": g3.done("")}, nil
	}
	raw, _, _, err := readArchive(opts.Archive, opts.Limits)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(raw)
	if err != nil { // G0A names it; G2 and G3 cannot judge what they cannot read
		out := map[string]*Result{}
		for _, g := range []string{"G2", "G3"} {
			r := newResult(g)
			r.fail("MANIFEST_INVALID", opts.Archive, "the archive's manifest does not read, so its paths and dependencies cannot be judged: %v", err)
			out[g] = r.done("")
		}
		return out, nil
	}
	a, err := InstallAction(tdir, m, opts.WorkOrder)
	if err != nil {
		return nil, err
	}
	g2, g3, err := WorkOrderGates(ctx, root, a)
	if err != nil {
		return nil, err
	}
	return map[string]*Result{"G2": g2, "G3": g3}, nil
}
