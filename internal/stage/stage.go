// Package stage turns a package source tree into a deterministic archive
// that passed preflight (cp-pkg stage): it hashes the tree, fills the
// manifest (declaring the tree's files on request), refuses an output
// directory that leads into the plane, and writes the archive; Sign then
// writes the archive's signature (cp-pkg sign).
package stage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/manifest"
)

// Options say what to stage and where.
type Options struct {
	PackageID string // must be the manifest's package_id
	Src       string // the package source tree
	Out       string // the archive's directory; "": <root>/_staging
	Declare   bool   // rewrite the asset list from the tree
	Gate      gate.Options
}

// Result is what Archive made.
type Result struct {
	PackageID        string       `json:"package_id"`
	Version          string       `json:"version"`
	Archive          string       `json:"archive"`
	ArchiveSHA256    string       `json:"archive_sha256"`
	ManifestHash     string       `json:"manifest_hash"`
	Files            int          `json:"files"`
	Bytes            int64        `json:"bytes"`
	Declared         []string     `json:"declared"`
	Dropped          []string     `json:"dropped"`
	RemovedSignature string       `json:"removed_signature,omitempty"`
	Preflight        *gate.Report `json:"preflight"`
}

// Archive stages a package source tree for the plane at root: it reads
// Src/manifest.json, fills every asset's sha256, size and mode from the
// tree (with Declare, rewrites the asset list from the tree: files not
// listed are declared, listed files no longer in the tree are dropped, and
// the others keep their classification), writes the manifest back, runs
// preflight against the plane and writes <Out>/<PackageID>.tar.gz
// (default Out: <root>/_staging). Errors: UNDECLARED or MISSING files
// (without Declare), PACKAGE_ID_MISMATCH, PREFLIGHT_FAILED (the report as
// the error's result), USAGE (an Out inside Src, or that is or leads into
// the plane outside _staging/ and packages_store/; a Src that is no
// directory), MANIFEST_INVALID, SOURCE_UNSAFE (a symlink or special file in
// the tree), and filesystem errors.
func Archive(ctx context.Context, root string, opts Options) (*Result, error) {
	id, src, out := opts.PackageID, opts.Src, opts.Out
	var err error
	if out == "" {
		out = filepath.Join(root, "_staging")
	}
	if err := checkOutside(src, out); err != nil {
		return nil, err
	}
	if out, err = checkOutOfPlane(root, out); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("--src %s does not exist", src)
	} else if err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, usagef("--src %s is not a directory", src)
	}

	srcRoot, err := os.OpenRoot(src)
	if err != nil {
		return nil, err
	}
	defer srcRoot.Close()
	orig, err := regfile.ReadIn(srcRoot, manifest.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, invalidf("MANIFEST_INVALID", "%s has no %s", src, manifest.FileName).
			WithHint("create the tree with cp-pkg init %s --spec SPEC-ID --output %s", id, src)
	}
	if err != nil {
		return nil, err
	}
	doc, err := looseManifest(orig)
	if err != nil {
		return nil, err
	}
	if got, ok := doc["package_id"].(string); ok && got != id {
		return nil, errorf("PACKAGE_ID_MISMATCH", "%s declares package %s, not %s", filepath.Join(src, manifest.FileName), got, id).
			WithDetails(map[string]any{"manifest_package_id": got, "package_id": id})
	}

	// One hashing pass over the tree serves the manifest and preflight.
	tree, err := gate.ReadTree(src)
	if err != nil {
		return nil, err
	}
	onDisk := make([]string, 0, len(tree.Files))
	for p := range tree.Files {
		onDisk = append(onDisk, p)
	}
	slices.Sort(onDisk)
	var dropped []string
	if opts.Declare {
		if dropped, err = dropMissing(tree, doc); err != nil {
			return nil, err
		}
	}
	declared, err := fillAssets(tree, doc)
	if err != nil {
		return nil, err
	}
	var undeclared []string
	for _, p := range onDisk {
		if p != manifest.FileName && !declared[p] {
			undeclared = append(undeclared, p)
		}
	}
	if len(undeclared) > 0 && !opts.Declare {
		return nil, errorf("UNDECLARED", "%d file(s) in %s not declared in %s: %s",
			len(undeclared), src, manifest.FileName, strings.Join(undeclared, ", ")).
			WithHint("declare them in %s, or run again with --declare", filepath.Join(src, manifest.FileName)).
			WithDetails(map[string]any{"undeclared": undeclared})
	}
	if len(undeclared) > 0 {
		if err := declare(tree, doc, undeclared); err != nil {
			return nil, err
		}
	}

	filled, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(filled)
	if err != nil {
		return nil, err
	}
	mb, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	mhash, err := m.Hash()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(mb, orig) {
		if err := atomicfile.Write(filepath.Join(src, manifest.FileName), mb, 0o644); err != nil {
			return nil, err
		}
	}

	tree.Manifest = mb
	rep, err := gate.Preflight(ctx, root, gate.Source{Tree: tree}, opts.Gate)
	if err != nil {
		return nil, err
	}
	if !rep.Passed {
		return nil, preflightFailed(rep)
	}

	res := Result{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash,
		Archive: filepath.Join(out, id+".tar.gz"), Files: len(m.Assets) + 1, Declared: undeclared, Dropped: dropped, Preflight: rep}
	if res.Declared == nil {
		res.Declared = []string{}
	}
	if res.Dropped == nil {
		res.Dropped = []string{}
	}
	if err := writeArchive(src, m, mb, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// checkOutside refuses an --out inside --src: the archive would land in the
// tree it packs, and be an undeclared file next time.
func checkOutside(src, out string) error {
	as, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	ao, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(as, ao); err == nil && filepath.IsLocal(rel) {
		return usagef("--out %s is inside --src %s; the archive would become part of the package", out, src)
	}
	return nil
}

// checkOutOfPlane refuses an --out inside the plane other than _staging/
// or packages_store/: an archive under a governed root would be a file no
// package owns, and installed/ is immutable. It judges where --out really
// is (its symlinks resolved, as far as it exists), refuses an --out that
// reaches into the plane through a symlink, and returns the resolved
// directory (out itself when no symlink is involved), which the archive is
// then written to: a symlink changed after the check is not followed again.
func checkOutOfPlane(root, out string) (string, error) {
	ao, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	real, err := realPath(out)
	if err != nil {
		return "", err
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(absRoot)
	if err != nil {
		return "", err
	}
	write := out
	if real != ao {
		write = real // a symlink on the way: write where it was judged
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || !filepath.IsLocal(rel) && rel != "." {
		return write, nil // outside the plane
	}
	lexical := func(base string) string { r, _ := filepath.Rel(base, ao); return r }
	if lexical(absRoot) != rel && lexical(realRoot) != rel {
		return "", usagef("--out %s leads into the plane (%s) through a symlink; give the directory itself", out, filepath.ToSlash(rel))
	}
	top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	if top == "_staging" || top == "packages_store" {
		return write, nil
	}
	return "", usagef("--out %s is inside the plane; archives go to _staging/ or packages_store/, or outside the plane", out)
}

// realPath returns where the OS takes path p: each existing component
// resolved in turn, a ".." applied after the symlinks before it (as the
// OS does, and filepath.Abs does not), and the part that does not exist
// yet (stage creates it) joined as written.
func realPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + string(filepath.Separator) + p
	}
	cur, err := filepath.EvalSymlinks(filepath.VolumeName(p) + string(filepath.Separator))
	if err != nil {
		return "", err
	}
	elems := strings.Split(filepath.ToSlash(p), "/")
	for i, e := range elems {
		switch e {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur is real: its parent is where ".." goes
			continue
		}
		next := filepath.Join(cur, e)
		r, err := filepath.EvalSymlinks(next)
		if errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(append([]string{next}, elems[i+1:]...)...), nil
		} else if err != nil {
			return "", err
		}
		cur = r
	}
	return cur, nil
}

// looseManifest decodes manifest.json before its hashes are filled in: one
// JSON object, decoded strictly, not yet checked against the schema.
func looseManifest(b []byte) (map[string]any, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, &manifest.Error{Message: fmt.Sprintf("not valid JSON: %v", err)}
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, &manifest.Error{Message: "not a JSON object"}
	}
	return doc, nil
}

// fillAssets sets each declared asset's sha256, size and mode from the
// file on disk (and a missing classification from its top directory), sets
// schema_version 1.3 (the version whose assets carry a mode), and returns
// the declared paths. A declared file that is not in the tree is MISSING.
// Entries it cannot read (not an object, no string path) are left for
// manifest.Parse to report.
func fillAssets(tree *gate.Tree, doc map[string]any) (map[string]bool, error) {
	declared := map[string]bool{}
	assets, ok := doc["assets"].([]any)
	if !ok {
		return declared, nil
	}
	var missing []string
	for i, x := range assets {
		a, ok := x.(map[string]any)
		if !ok {
			continue
		}
		p, ok := a["path"].(string)
		if !ok {
			continue
		}
		if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
			return nil, &manifest.Error{Path: fmt.Sprintf("/assets/%d/path", i), Message: fmt.Sprintf("%q is not a clean relative path", p)}
		}
		declared[p] = true
		f, present := tree.Files[p]
		if !present {
			missing = append(missing, p)
			continue
		}
		a["sha256"], a["size"], a["mode"] = f.SHA256, json.Number(strconv.FormatInt(f.Size, 10)), manifest.ModeFor(f.Mode)
		if _, ok := a["classification"]; !ok {
			a["classification"] = Classify(p)
		}
	}
	if len(missing) > 0 {
		return nil, errorf("MISSING", "%d declared file(s) not in the tree: %s", len(missing), strings.Join(missing, ", ")).
			WithHint("add the files, or run again with --declare to drop them from manifest.json").
			WithDetails(map[string]any{"missing": missing})
	}
	doc["schema_version"] = manifest.SchemaVersionModes
	return declared, nil
}

// dropMissing removes from the manifest's assets (for --declare) every
// entry whose path is a string naming no file of the tree, and returns
// those paths, sorted. Entries it cannot read are left for manifest.Parse.
func dropMissing(tree *gate.Tree, doc map[string]any) ([]string, error) {
	assets, ok := doc["assets"].([]any)
	if !ok {
		return nil, nil
	}
	kept := assets[:0:0]
	var dropped []string
	for _, x := range assets {
		if a, ok := x.(map[string]any); ok {
			if p, ok := a["path"].(string); ok {
				if _, present := tree.Files[p]; !present {
					dropped = append(dropped, p)
					continue
				}
			}
		}
		kept = append(kept, x)
	}
	doc["assets"] = kept
	slices.Sort(dropped)
	return dropped, nil
}

// declare appends the undeclared files (sorted) to the manifest's assets.
func declare(tree *gate.Tree, doc map[string]any, paths []string) error {
	assets, ok := doc["assets"].([]any)
	if !ok {
		if _, present := doc["assets"]; present {
			return &manifest.Error{Path: "/assets", Message: "not an array"}
		}
		assets = []any{}
	}
	for _, p := range paths {
		f := tree.Files[p]
		assets = append(assets, map[string]any{"path": p, "sha256": f.SHA256,
			"size": json.Number(strconv.FormatInt(f.Size, 10)), "classification": Classify(p), "mode": manifest.ModeFor(f.Mode)})
	}
	doc["assets"] = assets
	return nil
}

// classByRoot maps a governed root to the classification of its files;
// anything else is documentation.
var classByRoot = map[string]string{
	"frameworks": "framework", "specs": "spec", "schemas": "schema", "policies": "policy", "lib": "library",
	"scripts": "script", "modules": "module", "governed_prompts": "prompt", "config": "config",
}

// Classify guesses an asset's classification from its top directory.
func Classify(p string) string {
	top, _, ok := strings.Cut(p, "/")
	if c := classByRoot[top]; ok && c != "" {
		return c
	}
	return "doc"
}

// preflightFailed is the negative verdict of a failed preflight: the
// report goes out as the envelope's result, the failing gates and codes in
// the error's details.
func preflightFailed(rep *gate.Report) *Error {
	gates, codes := []string{}, []string{}
	for _, r := range rep.Results {
		if r.Passed {
			continue
		}
		gates = append(gates, r.Gate)
		for _, f := range r.Errors {
			codes = append(codes, f.Code)
		}
	}
	e := errorf("PREFLIGHT_FAILED", "preflight of %s %s failed: %s", rep.PackageID, rep.Version, rep.FirstFailure()).
		WithDetails(map[string]any{"failed_gates": gates, "codes": codes}).
		WithHint("no archive was written; .result.results holds every gate's findings")
	e.result = rep
	return e
}

// writeArchive writes <res.Archive> from src through a temporary file in
// the same directory: archive.WriteContents, fsync, a check that the bytes
// written are what the manifest declares, then rename. A .sig left beside an older, different archive is
// removed: it can no longer verify.
func writeArchive(src string, m *manifest.Manifest, mb []byte, res *Result) error {
	dir := filepath.Dir(res.Archive)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	paths := []string{manifest.FileName}
	for _, a := range m.Assets {
		paths = append(paths, a.Path)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(res.Archive)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	// WriteContents describes the archive from the bytes it wrote (a file
	// changed since it was hashed shows up here), so the check against the
	// manifest needs no second read.
	contents, err := archive.WriteContents(tmp, src, paths)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := MatchManifest(contents, m, mb); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	res.ArchiveSHA256 = "sha256:" + contents.ArchiveSHA256
	res.Bytes = fi.Size()

	sig := res.Archive + ".sig"
	stale := false
	if _, err := os.Stat(sig); err == nil {
		old, err := fileSHA256(res.Archive)
		stale = err != nil || old != res.ArchiveSHA256
	}
	if err := os.Rename(tmp.Name(), res.Archive); err != nil {
		return err
	}
	if stale {
		if err := os.Remove(sig); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		res.RemovedSignature = sig
	}
	return atomicfile.SyncDir(dir)
}

// MatchManifest checks that an archive holds exactly manifest bytes mb and
// the assets m declares, with their hashes and sizes: the tree did not
// change between hashing and archiving.
func MatchManifest(c *archive.Contents, m *manifest.Manifest, mb []byte) error {
	if !bytes.Equal(c.Manifest, mb) {
		return errorf("HASH_MISMATCH", "manifest.json changed while the archive was written")
	}
	want := map[string]manifest.Asset{}
	for _, a := range m.Assets {
		want[a.Path] = a
	}
	for _, f := range c.Files {
		if f.Path == manifest.FileName {
			continue
		}
		a, ok := want[f.Path]
		if !ok {
			return errorf("UNDECLARED", "%s is in the archive but not declared", f.Path)
		}
		if a.SHA256 != "sha256:"+f.SHA256 || a.Size != f.Size {
			return errorf("HASH_MISMATCH", "%s changed while the archive was written (or does not match its declaration)", f.Path)
		}
		delete(want, f.Path)
	}
	for p := range want {
		return errorf("MISSING", "%s is declared but not in the archive", p)
	}
	return nil
}

// fileSHA256 returns the "sha256:"-prefixed hash of a file's bytes.
func fileSHA256(p string) (string, error) {
	f, err := regfile.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
