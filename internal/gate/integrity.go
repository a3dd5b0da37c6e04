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

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
)

// Integrity is the plane health sweep of the tier planeID ("" for ho3) of
// the plane whose HO3 root is root: G0B (every file under the tier's
// governed roots owned and intact), G6 (every ledger of every tier) and
// RECEIPTS (receipts, installed manifests and registries agree). It reads
// every owned file once, hashing on every core, and writes nothing. A
// registry or governed-roots file that cannot be read is an error, never
// "nothing to check".
func Integrity(ctx context.Context, root, planeID string) ([]Result, error) {
	if planeID == "" {
		planeID = "ho3"
	}
	tdir, err := plane.Dir(root, planeID)
	if err != nil {
		return nil, &SourceError{Path: planeID, Msg: err.Error()}
	}
	g0b, err := G0B(ctx, tdir)
	if err != nil {
		return nil, err
	}
	g6, err := G6(ctx, root)
	if err != nil {
		return nil, err
	}
	rec, err := Receipts(tdir)
	if err != nil {
		return nil, err
	}
	return []Result{*g0b, *g6, *rec}, nil
}

// G0B checks plane ownership against the bytes: every regular file under a
// governed root is owned in file_ownership.csv (else ORPHAN), listed in its
// owner's receipt (else OWNERSHIP_CONFLICT), and holds the hash both record
// (else HASH_MISMATCH: a CSV row edited to match an edited file still
// differs from the receipt, which G0A and G5 tie to the signed manifest);
// installed files have the mode their receipt records, 0444 or 0555, and
// never a setuid, setgid or write bit (else MODE_MISMATCH); every owned
// file exists (else MISSING); every owner is an installed package (else
// OWNERSHIP_CONFLICT); an owner's receipt that cannot be read is
// RECEIPT_INVALID. Anything under a governed root that is not a regular file
// or directory is NOT_REGULAR. An owned file with another name (HARD_LINK)
// or another owner than the plane root (OWNER_MISMATCH) is a finding, and so
// is what keptState finds: a pending journal, receipts and manifests that
// are not read-only, kept archives missing or changed. Findings are sorted
// by path.
func G0B(ctx context.Context, root string) (*Result, error) {
	r := newResult("G0B")
	if unsafeDirs(r, root, planeDirs, "PLANE_UNSAFE") {
		return r.done(""), nil
	}
	roots, err := plane.GovernedRoots(root)
	if err != nil {
		return nil, err
	}
	if unsafeDirs(r, root, roots, "NOT_REGULAR") {
		return r.done(""), nil // a governed root's files are not read through it
	}
	owners, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return nil, err
	}
	pkgs, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	installed := map[string]bool{}
	for _, p := range pkgs {
		installed[p["package_id"]] = p["status"] == registry.StatusInstalled
	}
	owned := make(map[string]registry.Row, len(owners))
	for _, o := range owners {
		owned[o["path"]] = o
	}
	receipted := map[string]map[string]plane.ReceiptFile{} // package id → path → file
	archiveOf := map[string]string{}                       // package id → the receipt's archive_sha256
	for _, p := range pkgs {
		if p["status"] != registry.StatusInstalled {
			continue
		}
		rc, err := plane.ReadReceipt(root, p["package_id"])
		if err != nil {
			r.fail("RECEIPT_INVALID", plane.ReceiptPath(p["package_id"]), "%v", unwrapPath(err))
			continue
		}
		files := make(map[string]plane.ReceiptFile, len(rc.Files))
		for _, f := range rc.Files {
			files[f.Path] = f
		}
		receipted[p["package_id"]] = files
		archiveOf[p["package_id"]] = rc.ArchiveSHA256
	}
	pr, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	dirs := archive.NewDirRoots(pr)
	defer dirs.Close()
	rootInfo, err := pr.Stat(".")
	if err != nil {
		return nil, err
	}
	planeOwner := ownerOf(rootInfo)
	if err := keptState(r, root, pr, dirs, pkgs, archiveOf, planeOwner); err != nil {
		return nil, err
	}
	onDisk := map[string]bool{}
	var paths []string
	for _, g := range roots {
		g = strings.TrimSuffix(g, "/")
		if fi, err := pr.Lstat(g); errors.Is(err, fs.ErrNotExist) {
			continue // a governed root nothing was installed under
		} else if err != nil {
			return nil, err
		} else if !fi.IsDir() {
			r.fail("NOT_REGULAR", g, "a governed root that is a %s, not a directory", kindOf(fi.Mode().Type()))
			continue
		}
		err := fs.WalkDir(pr.FS(), g, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir():
				return ctx.Err()
			case !d.Type().IsRegular():
				r.fail("NOT_REGULAR", p, "a %s under a governed root; packages install regular files only", kindOf(d.Type()))
				return nil
			}
			onDisk[p] = true
			if _, ok := owned[p]; !ok {
				r.fail("ORPHAN", p, "not owned by any installed package")
				return nil
			}
			paths = append(paths, p)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sums, err := hashPaths(dirs, paths)
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		o := owned[p]
		files, haveReceipt := receipted[o["package_id"]]
		rf, listed := files[p]
		switch {
		case sums[i].SHA256 != o["sha256"] || fmt.Sprint(sums[i].Size) != o["size"]:
			r.fail("HASH_MISMATCH", p, "holds %s (%d bytes); %s installed %s (%s bytes)", sums[i].SHA256, sums[i].Size, o["package_id"], o["sha256"], o["size"])
		case haveReceipt && !listed:
			r.fail("OWNERSHIP_CONFLICT", p, "owned by %s in file_ownership.csv, but %s's receipt does not list it", o["package_id"], o["package_id"])
		case haveReceipt && (rf.SHA256 != sums[i].SHA256 || rf.Size != sums[i].Size):
			r.fail("HASH_MISMATCH", p, "holds %s, as file_ownership.csv says, but %s's receipt records %s: the registry was edited", sums[i].SHA256, o["package_id"], rf.SHA256)
		default:
			if why := modeProblem(sums[i].Mode, rf.FileMode()); why != "" {
				r.fail("MODE_MISMATCH", p, "%s", why)
			}
		}
	}
	for i, p := range paths {
		checkOwner(r, p, sums[i].owner, planeOwner)
	}
	for _, o := range owners {
		p := o["path"]
		if !installed[o["package_id"]] {
			r.fail("OWNERSHIP_CONFLICT", p, "owned by %s, which is not an installed package", o["package_id"])
		}
		if !onDisk[p] && plane.Under(p, roots) {
			if _, err := pr.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				r.fail("MISSING", p, "owned by %s but not on disk", o["package_id"])
			} else if err != nil {
				return nil, err
			}
		} else if !plane.Under(p, roots) {
			r.fail("NOT_GOVERNED", p, "owned by %s but outside the governed roots %v", o["package_id"], roots)
		}
	}
	slices.SortStableFunc(r.Errors, func(a, b Finding) int { return strings.Compare(a.Path, b.Path) })
	r.Details["files"] = len(onDisk)
	r.Details["owned"] = len(owners)
	return r.done("every file under the governed roots is owned by one installed package and matches its hash"), nil
}

// receiptDisagrees says how a receipt differs from its packages_state.csv
// row in what both record of the install (package, version, manifest hash,
// archive hash, signature), or "" when they agree. A receipt edited to
// "waived", or to another archive, is caught here; the row edited to match
// is caught by G5 (a waiver stands only beside its operation) and G0B (the
// kept archive).
func receiptDisagrees(rc *plane.Receipt, row registry.Row) string {
	got := []string{rc.PackageID, rc.Version, rc.ManifestHash, rc.ArchiveSHA256, rc.Signature}
	want := []string{row["package_id"], row["version"], row["manifest_hash"], row["archive_sha256"], row["signature"]}
	names := []string{"package_id", "version", "manifest_hash", "archive_sha256", "signature"}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("the receipt's %s is %q; packages_state.csv records %q", names[i], got[i], want[i])
		}
	}
	return ""
}

// Receipts checks that what installed/ says agrees with the registries:
// every installed package in packages_state.csv has a receipt and manifest
// that match its row (RECEIPT_MISSING, RECEIPT_INVALID, RECEIPT_MISMATCH);
// every receipt's files are exactly the files the ownership registry gives
// its package (OWNERSHIP_CONFLICT when another package owns one, MISSING when
// none does, UNDECLARED for an owned file the receipt does not list); and
// every directory under installed/ belongs to an installed package
// (RECEIPT_ORPHAN); the kept signature of every package recorded as signed
// verifies (keptSignature: SIGNATURE_MISSING, SIGNATURE_INVALID,
// KEY_UNTRUSTED), as G5 checks it in cp-gate check.
func Receipts(root string) (*Result, error) {
	r := newResult("RECEIPTS")
	pkgs, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	owners, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return nil, err
	}
	byPkg := map[string]map[string]registry.Row{}
	for _, o := range owners {
		if byPkg[o["package_id"]] == nil {
			byPkg[o["package_id"]] = map[string]registry.Row{}
		}
		byPkg[o["package_id"]][o["path"]] = o
	}
	ownerOf := map[string]string{}
	for _, o := range owners {
		ownerOf[o["path"]] = o["package_id"]
	}
	trusted, err := trust.Load(root)
	if err != nil {
		return nil, err
	}
	vs, err := trust.Verifiers(trusted, trust.PurposePackage, "")
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, p := range pkgs {
		id := p["package_id"]
		if p["status"] != registry.StatusInstalled {
			continue
		}
		known[id] = true
		if strings.HasPrefix(p["signature"], "signed:") {
			if _, err := keptSignature(r, root, p, vs); err != nil {
				return nil, err
			}
		}
		rc, err := plane.ReadReceipt(root, id)
		if errors.Is(err, fs.ErrNotExist) {
			r.fail("RECEIPT_MISSING", plane.ReceiptPath(id), "%s is installed but has no receipt", id)
			continue
		} else if err != nil {
			r.fail("RECEIPT_INVALID", plane.ReceiptPath(id), "%v", err)
			continue
		}
		if why := receiptDisagrees(rc, p); why != "" {
			r.fail("RECEIPT_MISMATCH", plane.ReceiptPath(id), "%s", why)
		}
		if mb, err := regfile.ReadNoFollow(root + "/" + plane.ManifestPath(id)); err != nil {
			r.fail("RECEIPT_MISSING", plane.ManifestPath(id), "%v", errors.Unwrap(err))
		} else if m, err := manifest.Parse(mb); err != nil {
			r.fail("RECEIPT_INVALID", plane.ManifestPath(id), "%v", err)
		} else if h, err := m.Hash(); err != nil || h != p["manifest_hash"] {
			r.fail("RECEIPT_MISMATCH", plane.ManifestPath(id), "the installed manifest hashes to %s, packages_state.csv says %s", h, p["manifest_hash"])
		}
		listed := map[string]bool{}
		for _, f := range rc.Files {
			listed[f.Path] = true
			o, ok := byPkg[id][f.Path]
			switch {
			case ok && (o["sha256"] != f.SHA256 || o["size"] != fmt.Sprint(f.Size)):
				r.fail("RECEIPT_MISMATCH", f.Path, "%s's receipt says %s, the ownership registry %s", id, f.SHA256, o["sha256"])
			case ok:
			case ownerOf[f.Path] != "":
				r.fail("OWNERSHIP_CONFLICT", f.Path, "in %s's receipt but owned by %s", id, ownerOf[f.Path])
			default:
				r.fail("MISSING", f.Path, "in %s's receipt but owned by no package", id)
			}
		}
		for p := range byPkg[id] {
			if !listed[p] {
				r.fail("UNDECLARED", p, "owned by %s but not in its receipt", id)
			}
		}
	}
	entries, err := os.ReadDir(root + "/" + plane.InstalledDir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if sub, err := os.ReadDir(root + "/" + plane.InstalledDir + "/" + e.Name()); err == nil && len(sub) == 0 {
			continue // an empty directory left by a removal: nothing is installed there
		}
		if !known[e.Name()] {
			r.fail("RECEIPT_ORPHAN", plane.InstalledDir+"/"+e.Name(), "no installed package %s in packages_state.csv", e.Name())
		}
	}
	slices.SortStableFunc(r.Errors, func(a, b Finding) int { return strings.Compare(a.Path, b.Path) })
	r.Details["packages"] = len(known)
	return r.done("receipts, installed manifests and registries agree"), nil
}

// planeDirs are the directories of a tier the tools read and write (the
// governed roots are added from config/governed_roots.json).
var planeDirs = []string{"config", "registries", "installed", "packages_store", "versions", "ledger",
	"_staging", "_journal", "work_orders", "blobs", "planes", "sessions"}

// unsafeDirs adds a finding (code) for each of dirs (relative to the
// tier's root) that exists as anything but a real directory: a symlink
// planted there would aim the tools' writes (registries, checkpoints,
// receipts, installed files, run as the plane's owner) outside the plane,
// and their reads at copies that pass. It reports whether it found any: G0B
// then stops, reading nothing through them.
func unsafeDirs(r *Result, root string, dirs []string, code string) bool {
	found := false
	for _, d := range dirs {
		d = strings.TrimSuffix(d, "/")
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(d)))
		if err != nil || fi.IsDir() {
			continue
		}
		r.fail(code, d, "a %s where the plane's %s/ directory belongs, not a directory: the tools' reads and writes would follow it out of the plane", kindOf(fi.Mode().Type()), d)
		found = true
	}
	return found
}
