package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/spec"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
)

// SourceError is a package source tree that cannot be read safely (a
// symlink or special file). Its code is SOURCE_UNSAFE.
type SourceError struct{ Path, Msg string }

func (e *SourceError) Error() string { return e.Path + ": " + e.Msg }

// Code returns SOURCE_UNSAFE.
func (e *SourceError) Code() string { return "SOURCE_UNSAFE" }

// ErrorDetails names the path concerned.
func (e *SourceError) ErrorDetails() map[string]any { return map[string]any{"path": e.Path} }

// File is what a package source holds at one path.
type File struct {
	SHA256 string // "sha256:" + hex
	Size   int64
	Mode   fs.FileMode // permission, setuid, setgid and sticky bits as found (an archive member: 0644 or 0755); 0: unknown
	owner  owner       // links and owner, when read from disk by hashPaths
}

// Tree is a package source tree as read once: its manifest bytes and every
// other regular file's hash and size, by slash path.
type Tree struct {
	Manifest []byte
	Files    map[string]File
	dir      string // where it was read from, for the files preflight reads back (configContent)
}

func preflight(ctx context.Context, root string, src Source, opts Options) (*Report, error) {
	var raw []byte
	var files map[string]File
	var sig []byte
	var archiveHash string
	var err error
	switch {
	case src.Archive != "":
		if src.Contents != nil {
			raw, files, archiveHash = contentsFiles(src.Contents)
		} else if raw, files, archiveHash, err = readArchive(src.Archive, opts.Limits); err != nil {
			return nil, err
		}
		if src.SigRead {
			sig = src.Sig
		} else if sig, err = ReadSig(src.Archive); err != nil {
			return nil, err
		}
	case src.Tree != nil:
		raw, files = src.Tree.Manifest, src.Tree.Files
	case src.Dir != "":
		t, err := ReadTree(src.Dir)
		if err != nil {
			return nil, err
		}
		raw, files = t.Manifest, t.Files
	default:
		return nil, errors.New("gate: preflight needs a source dir or an archive")
	}
	m, err := manifest.Parse(raw)
	if err != nil {
		return nil, err
	}
	mhash, err := m.Hash()
	if err != nil {
		return nil, err
	}
	if err := src.Expect.check(src.Archive, m.PackageID, archiveHash, mhash); err != nil {
		return nil, err
	}
	rep := &Report{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveSHA256: archiveHash}
	g0a, err := G0A(root, m, files)
	if err != nil {
		return nil, err
	}
	if err := configContent(root, g0a, m, src, files); err != nil {
		return nil, err
	}
	if err := promptContent(g0a, m, src, files); err != nil {
		return nil, err
	}
	g1, err := G1(root, m)
	if err != nil {
		return nil, err
	}
	g5, err := G5(root, m, mhash, archiveHash, sig, src.Archive != "", opts)
	if err != nil {
		return nil, err
	}
	ver, err := Version(root, m, mhash)
	if err != nil {
		return nil, err
	}
	own, err := Ownership(root, m)
	if err != nil {
		return nil, err
	}
	// DESIGN.md §6's order: the first that fails is the refusal's code.
	rep.Results = []Result{*g0a, *g1, *g5, *ver, *own}
	rep.Passed = true
	for _, r := range rep.Results {
		rep.Passed = rep.Passed && r.Passed
	}
	return rep, nil
}

// ReadSig reads archive's signature, archive+".sig": nil if there is none,
// and a non-nil empty slice for an empty file, which G5 judges
// SIGNATURE_INVALID (present but empty is not missing, so no waiver
// excuses it).
func ReadSig(archive string) ([]byte, error) {
	sig, err := regfile.ReadFile(archive + ".sig")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil && sig == nil {
		sig = []byte{}
	}
	return sig, err
}

// readArchive scans a package archive with the extraction rules (writing
// nothing) and returns its manifest bytes, its files and its hash.
func readArchive(path string, lim archive.Limits) ([]byte, map[string]File, string, error) {
	f, err := regfile.Open(path)
	if err != nil {
		return nil, nil, "", err
	}
	defer f.Close()
	c, err := archive.Scan(f, lim)
	if err != nil {
		return nil, nil, "", err
	}
	raw, files, hash := contentsFiles(c)
	return raw, files, hash, nil
}

// contentsFiles returns an archive's manifest bytes, its other files and
// its hash.
func contentsFiles(c *archive.Contents) ([]byte, map[string]File, string) {
	files := make(map[string]File, len(c.Files))
	for _, cf := range c.Files {
		if cf.Path != archive.ManifestName {
			files[cf.Path] = File{SHA256: "sha256:" + cf.SHA256, Size: cf.Size, Mode: cf.Mode}
		}
	}
	return c.Manifest, files, "sha256:" + c.ArchiveSHA256
}

// ReadTree reads a package source tree: its manifest.json and the hash and
// size of every other regular file (slash paths), hashed in parallel and
// opened through os.Root so nothing outside dir is read. A symlink or
// special file anywhere is SOURCE_UNSAFE: the tree must be what the archive
// will be.
func ReadTree(dir string) (*Tree, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	dirs := archive.NewDirRoots(root) // owns root from here
	defer dirs.Close()
	raw, err := regfile.ReadIn(root, manifest.FileName)
	if err != nil {
		return nil, err
	}
	var paths []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() || p == manifest.FileName:
			return nil
		case !d.Type().IsRegular():
			return &SourceError{Path: p, Msg: "a " + kindOf(d.Type()) + "; a package holds regular files only"}
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sums, err := hashPaths(dirs, paths)
	if err != nil {
		return nil, err
	}
	t := &Tree{Manifest: raw, Files: make(map[string]File, len(paths)), dir: dir}
	for i, p := range paths {
		t.Files[p] = sums[i]
	}
	return t, nil
}

// hashPaths hashes the regular files at paths (slash paths under dirs'
// root) on every core and returns their hashes and sizes in order; the
// first error (in path order) wins. Each directory is opened once, here,
// so that every hash opens its file with a single-component call.
func hashPaths(dirs *archive.DirRoots, paths []string) ([]File, error) {
	for _, p := range paths {
		if _, _, err := dirs.Split(p); err != nil {
			return nil, err
		}
	}
	sums := make([]File, len(paths))
	errs := make([]error, len(paths))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			h := sha256.New()
			buf := make([]byte, 256<<10)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				dir, base, err := dirs.Split(paths[i]) // opened above: a map read
				if err != nil {
					errs[i] = err
					continue
				}
				sums[i], errs[i] = hashIn(dir, base, h, buf)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return sums, nil
}

func hashIn(dir *os.Root, base string, h hash.Hash, buf []byte) (File, error) {
	f, err := regfile.OpenIn(dir, base) // a FIFO swapped in after the walk: refused, not waited on
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h.Reset()
	// Hide *os.File's WriterTo: it would copy through a fresh buffer per file.
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
	if err != nil {
		return File{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	return File{SHA256: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n, Mode: modeBits(fi.Mode()), owner: ownerOf(fi)}, nil
}

func kindOf(t fs.FileMode) string {
	switch {
	case t.IsRegular():
		return "regular file"
	case t.IsDir():
		return "directory"
	case t&fs.ModeSymlink != 0:
		return "symlink"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// G0A checks the package declaration: the tier at root is the plane the
// manifest targets (PLANE_MISMATCH), every file declared, every declared
// file present with its size, hash and declared mode, every path safe: not
// a reserved plane path, not a governed root itself, and under a governed
// root; and the kernel's id and type are the kernel's (KERNEL_RESERVED, see
// kernelRule); and operator configuration only in a config package, which
// holds nothing else (CONFIG_ASSET_INVALID, see configRule); and prompt
// packs only in a prompt_pack package, which holds nothing else
// (PROMPT_PACK_INVALID, see promptRule).
func G0A(root string, m *manifest.Manifest, files map[string]File) (*Result, error) {
	r := newResult("G0A")
	roots, err := plane.GovernedRoots(root)
	if err != nil {
		return nil, err
	}
	t, err := plane.ReadTier(root)
	if err != nil {
		return nil, err
	}
	if m.PlaneID != t.PlaneID {
		r.fail("PLANE_MISMATCH", m.PackageID, "the manifest targets plane %s; this is plane %s", m.PlaneID, t.PlaneID)
	}
	declaration(r, roots, m, files)
	kernelRule(r, m)
	configRule(r, m)
	promptRule(r, m)
	r.Details["assets"] = len(m.Assets)
	return r.done("every file declared, present, and matching its size and hash"), nil
}

// declaration adds to r what is wrong between m's assets and files: paths
// reserved or outside roots, declared files missing or differing in size or
// hash, files not declared.
func declaration(r *Result, roots []string, m *manifest.Manifest, files map[string]File) {
	declared := map[string]bool{}
	for _, a := range m.Assets {
		declared[a.Path] = true
		switch {
		case plane.Under(a.Path, plane.Reserved):
			r.fail("RESERVED_TARGET", a.Path, "packages may never write %s", a.Path)
		case !plane.Under(a.Path, roots):
			r.fail("NOT_GOVERNED", a.Path, "%s is outside the governed roots %v", a.Path, roots)
		case isRoot(a.Path, roots):
			r.fail("RESERVED_TARGET", a.Path, "%s is a governed root itself; an asset is a file under one (DESIGN.md §4)", a.Path)
		}
		f, ok := files[a.Path]
		switch {
		case !ok:
			r.fail("MISSING", a.Path, "declared but not in the package")
		case f.Size != a.Size:
			r.fail("SIZE_MISMATCH", a.Path, "declared %d bytes, holds %d", a.Size, f.Size)
		case f.SHA256 != a.SHA256:
			r.fail("HASH_MISMATCH", a.Path, "declared %s, holds %s", a.SHA256, f.SHA256)
		default:
			declaredMode(r, a, f)
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if !declared[p] {
			r.fail("UNDECLARED", p, "in the package but not declared in manifest.json")
		}
	}
}

// G1 checks the framework/spec chain: the spec registered and active, its
// framework registered and active and the package's, every asset inside the
// spec's declared assets, and every dependency installed at an allowed
// version.
func G1(root string, m *manifest.Manifest) (*Result, error) {
	l, err := loadLaw(root, root)
	if err != nil {
		return nil, err
	}
	r := newResult("G1")
	l.check(r, m, "")
	r.Details["spec_id"], r.Details["framework_id"] = m.SpecID, m.FrameworkID
	return r.done("spec and framework registered and active; assets within the spec; dependencies installed"), nil
}

// law is what G1 judges against, read once: the frameworks and specs
// registered in HO3 (lawRoot), and the packages installed in the tier
// checked (tierRoot). Parsed specs are kept by registry path.
type law struct {
	lawRoot   string
	specs     []registry.Row
	fws       []registry.Row
	pkgs      []registry.Row
	parsed    map[string]*spec.Spec
	parseErrs map[string]error
}

func loadLaw(lawRoot, tierRoot string) (*law, error) {
	l := &law{lawRoot: lawRoot, parsed: map[string]*spec.Spec{}, parseErrs: map[string]error{}}
	var err error
	if l.specs, err = registry.Read(lawRoot, registry.Specs); err != nil {
		return nil, err
	}
	if l.fws, err = registry.Read(lawRoot, registry.Frameworks); err != nil {
		return nil, err
	}
	if l.pkgs, err = registry.Read(tierRoot, registry.Packages); err != nil {
		return nil, err
	}
	return l, nil
}

// check adds m's G1 findings to r; prefix (a package id and ": ") begins
// each message when several packages share one result.
func (l *law) check(r *Result, m *manifest.Manifest, prefix string) {
	fail := func(code, path, format string, args ...any) { r.fail(code, path, prefix+format, args...) }
	row := find(l.specs, "spec_id", m.SpecID)
	if row == nil {
		fail("SPEC_NOT_FOUND", m.SpecID, "spec %s is not registered", m.SpecID)
		return
	}
	if row["status"] != registry.StatusActive {
		fail("SPEC_INACTIVE", m.SpecID, "spec %s is %s", m.SpecID, row["status"])
	}
	if row["framework_id"] != m.FrameworkID {
		fail("FRAMEWORK_MISMATCH", m.SpecID, "spec %s answers to %s, the package names %s", m.SpecID, row["framework_id"], m.FrameworkID)
	}
	fw := find(l.fws, "framework_id", row["framework_id"])
	switch {
	case fw == nil:
		fail("FRAMEWORK_NOT_FOUND", row["framework_id"], "framework %s is not registered", row["framework_id"])
	case fw["status"] != registry.StatusActive:
		fail("FRAMEWORK_INACTIVE", row["framework_id"], "framework %s is %s", row["framework_id"], fw["status"])
	}
	s, ok := l.parsed[row["path"]]
	if !ok {
		var err error
		if s, err = registeredSpec(l.lawRoot, row); err != nil {
			l.parseErrs[row["path"]] = err
		}
		l.parsed[row["path"]] = s
	}
	if s == nil {
		fail("SPEC_INVALID", row["path"], "%v", l.parseErrs[row["path"]])
		return
	}
	for _, a := range m.Assets {
		if !s.Covers(a.Path) {
			fail("ASSET_NOT_IN_SPEC", a.Path, "not inside spec %s's assets %v", s.SpecID, s.Assets)
		}
	}
	for _, d := range m.Dependencies {
		dep, err := manifest.ParseDependency(d)
		if err != nil {
			fail("DEPENDENCY_INVALID", d, "%v", err)
			continue
		}
		p := find(l.pkgs, "package_id", dep.PackageID)
		switch {
		case p == nil || p["status"] != registry.StatusInstalled:
			fail("DEPENDENCY_MISSING", dep.PackageID, "dependency %s is not installed", dep.PackageID)
		case !dep.Allows(p["version"]):
			fail("DEPENDENCY_VERSION", dep.PackageID, "%s %s is installed; %s requires %s", dep.PackageID, p["version"], m.PackageID, d)
		}
	}
}

// registeredSpec reads a registered spec and checks it is the registered
// bytes.
func registeredSpec(root string, row registry.Row) (*spec.Spec, error) {
	b, err := regfile.ReadNoFollow(filepath.Join(root, filepath.FromSlash(row["path"])))
	if err != nil {
		return nil, err
	}
	if got := plane.SHA256(b); got != row["sha256"] {
		return nil, errors.New("the registered spec file changed since registration (hash " + got + ")")
	}
	return spec.Parse(b, strings.HasSuffix(row["path"], ".yaml"))
}

// Ownership checks that no file the package declares is owned by another
// installed package, or collides with one on a case-insensitive or
// normalising file system, or would sit under another's file or in place of
// its directory (OWNERSHIP_CONFLICT); and that nothing on disk stands where
// a file or its directories go (PATH_CONFLICT). See pathConflicts. A
// prompt pack id registered to another package is an OWNERSHIP_CONFLICT
// too (promptOwners).
func Ownership(root string, m *manifest.Manifest) (*Result, error) {
	r := newResult("OWNERSHIP")
	owners, err := registry.Read(root, registry.Ownership)
	if err != nil {
		return nil, err
	}
	if err := pathConflicts(r, root, m, owners); err != nil {
		return nil, err
	}
	if err := promptOwners(r, root, m); err != nil {
		return nil, err
	}
	return r.done("no declared file is owned by another package, and nothing on disk is in the way"), nil
}

// isRoot reports whether p names one of the governed roots itself.
func isRoot(p string, roots []string) bool {
	for _, g := range roots {
		if p == strings.TrimSuffix(g, "/") {
			return true
		}
	}
	return false
}

// G5 checks the archive's signature against the plane's trusted keys (and
// CONTROL_PLANE_VERIFY_KEY). A missing signature fails unless unsigned
// packages are allowed, and then passes as a recorded waiver; an invalid or
// untrusted one always fails. A source tree has nothing to sign yet: G5 says
// it does not apply, rather than passing silently.
func G5(root string, m *manifest.Manifest, mhash, archiveHash string, sig []byte, isArchive bool, opts Options) (*Result, error) {
	r := newResult("G5")
	if !isArchive {
		r.Message = "not applicable: a source tree has no archive to sign yet (stage, sign, then preflight --archive)"
		r.Details["applicable"] = false
		return r.done(""), nil
	}
	r.Details["applicable"] = true
	trusted, err := trust.Load(root)
	if err != nil {
		return nil, err
	}
	vs, err := trust.Verifiers(trusted, trust.PurposePackage, opts.VerifyKey)
	if err != nil {
		return nil, err
	}
	stmt := pkgsig.Statement{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveHash: archiveHash}
	res, err := pkgsig.Check(sig, stmt, vs, opts.AllowUnsigned)
	if err != nil {
		var se *pkgsig.Error
		if errors.As(err, &se) {
			r.fail(se.Code(), m.PackageID, "%s", se.Error())
			return r.done(""), nil
		}
		return nil, err
	}
	if res.Waived {
		r.warn("SIGNATURE_WAIVED", m.PackageID, "%s", res.Waiver.Reason)
		r.Details["waived"] = true
		r.Message = "waived: unsigned package allowed by CONTROL_PLANE_ALLOW_UNSIGNED=1 (a weakened control, recorded)"
		return r.done(""), nil
	}
	r.Details["signed_by"] = res.KeyName
	return r.done("signed by trusted key " + res.KeyName), nil
}

// Version applies the version rule against what is installed (DESIGN.md
// §6): a lower version than installed is refused (VERSION_DOWNGRADE); the
// same version with a different manifest hash is refused
// (VERSION_CONFLICT); the same version and hash is a no-op (a warning,
// ALREADY_INSTALLED); a higher version is an upgrade.
func Version(root string, m *manifest.Manifest, mhash string) (*Result, error) {
	r := newResult("VERSION")
	pkgs, err := registry.Read(root, registry.Packages)
	if err != nil {
		return nil, err
	}
	p := find(pkgs, "package_id", m.PackageID)
	// Installed from an archive, a kernel would change one tier's kernel
	// alone and break parity (G0K): kernel releases are built by cp-install
	// and installed on every tier at once. Only the installed kernel itself
	// (a no-op, or a forced repair) passes.
	kernel := m.PackageID == plane.KernelID || m.PackageType == "kernel"
	parity := func() *Result {
		r.fail("KERNEL_PARITY", m.PackageID, "%s %s (type %s) would change the kernel of this tier alone and break kernel parity (G0K): only %s is a kernel, "+
			"and its releases are built by cp-install and installed on every tier at once (cp-install trust add|remove)", m.PackageID, m.Version, m.PackageType, plane.KernelID)
		return r.done("")
	}
	if p == nil || p["status"] != registry.StatusInstalled {
		if kernel {
			return parity(), nil
		}
		return r.done("not installed: a new install"), nil
	}
	r.Details["installed_version"] = p["version"]
	switch c := manifest.CompareVersions(m.Version, p["version"]); {
	case c < 0:
		r.fail("VERSION_DOWNGRADE", m.PackageID, "%s %s is installed; %s is lower", m.PackageID, p["version"], m.Version)
	case c == 0 && p["manifest_hash"] != mhash:
		r.fail("VERSION_CONFLICT", m.PackageID, "%s %s is installed with manifest %s; this %s has manifest %s: a changed package needs a new version", m.PackageID, p["version"], p["manifest_hash"], m.Version, mhash)
	case c == 0:
		r.warn("ALREADY_INSTALLED", m.PackageID, "%s %s is installed with this manifest: installing it changes nothing", m.PackageID, m.Version)
		return r.done("already installed: a no-op"), nil
	case kernel:
		return parity(), nil
	default:
		return r.done("an upgrade from " + p["version"]), nil
	}
	return r.done(""), nil
}

func find(rows []registry.Row, key, val string) registry.Row {
	for _, r := range rows {
		if r[key] == val {
			return r
		}
	}
	return nil
}
