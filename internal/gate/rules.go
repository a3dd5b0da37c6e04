package gate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
)

// The rules below are judged by Preflight, so that cp-pkg preflight, stage,
// cp-gate check --archive and cp-install all refuse the same packages, and
// an install refuses them before its checkpoint or any other write.

// kernelRule adds KERNEL_RESERVED to r when m claims the kernel without
// being one: the kernel's id (plane.KernelID) is reserved to a package of
// type kernel under the kernel's spec and framework, and type kernel is
// reserved to that id. A package that broke this would replace the kernel
// and remove config/ and schemas/, leaving every gate and install verb,
// rollback included, unable to run. A true kernel from an archive is
// refused too, by the VERSION rule (KERNEL_PARITY): kernel releases are
// built by cp-install itself (plane.BuildRelease) and never pass here.
func kernelRule(r *Result, m *manifest.Manifest) {
	if m.PackageID != plane.KernelID {
		if m.PackageType == "kernel" {
			r.fail("KERNEL_RESERVED", m.PackageID, "package type kernel is reserved to %s, the plane's own kernel", plane.KernelID)
		}
		return
	}
	if m.PackageType != "kernel" || m.SpecID != plane.KernelSpec || m.FrameworkID != plane.KernelFramework {
		r.fail("KERNEL_RESERVED", m.PackageID, "%s is reserved to the plane's kernel (type kernel, %s, %s); this package is type %s, %s, %s",
			plane.KernelID, plane.KernelSpec, plane.KernelFramework, m.PackageType, m.SpecID, m.FrameworkID)
	}
}

// claim is a path that installed packages hold: a file they own, or a
// directory holding files they own.
type claim struct {
	name, owner string
	dir         bool
}

// pathConflicts adds OWNERSHIP_CONFLICT to r for every asset of m that
// another installed package's files stand in the way of, compared as a
// case-insensitive, normalising file system would (archive.Key): the same
// path, a case-fold or NFC/NFD twin of it (two files on such a system, one
// file on another), a file where another package has a directory, or a path
// under another package's file (config/trusted_keys.json/x). Then it adds
// PATH_CONFLICT for an asset whose path, or one of whose directories, is
// held on disk by something else than what the install could write (a
// directory where the file goes, a file or symlink where a directory goes).
func pathConflicts(r *Result, root string, m *manifest.Manifest, owners []registry.Row) error {
	claims := make(map[string]claim, len(owners))
	for _, o := range owners {
		p, id := o["path"], o["package_id"]
		if id == m.PackageID {
			continue // replaced by this install
		}
		for i := 0; i < len(p); i++ {
			if p[i] == '/' {
				if k := archive.Key(p[:i]); claims[k].name == "" {
					claims[k] = claim{name: p[:i], owner: id, dir: true}
				}
			}
		}
		claims[archive.Key(p)] = claim{name: p, owner: id}
	}
	for _, a := range m.Assets {
		if c, ok := claims[archive.Key(a.Path)]; ok {
			switch {
			case c.dir:
				r.fail("OWNERSHIP_CONFLICT", a.Path, "%s holds files of %s under %s; %s declares it as a file", c.name, c.owner, c.name, m.PackageID)
			case c.name == a.Path:
				r.fail("OWNERSHIP_CONFLICT", a.Path, "owned by %s; %s declares it too", c.owner, m.PackageID)
			default:
				r.fail("OWNERSHIP_CONFLICT", a.Path, "collides with %s, owned by %s, when case-folded or normalised", c.name, c.owner)
			}
			continue
		}
		for d := path.Dir(a.Path); d != "."; d = path.Dir(d) {
			if c, ok := claims[archive.Key(d)]; ok && !c.dir {
				r.fail("OWNERSHIP_CONFLICT", a.Path, "%s is a file owned by %s, so nothing can be installed under it", c.name, c.owner)
				break
			}
		}
	}
	return onDisk(r, root, m)
}

// onDisk adds PATH_CONFLICT for the assets that the disk stands in the
// way of (see pathConflicts). Each directory is looked at once.
func onDisk(r *Result, root string, m *manifest.Manifest) error {
	pr, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer pr.Close()
	// kind returns what p is on disk: "" for absent or a directory.
	seen := map[string]string{}
	kind := func(p string, wantDir bool) (string, error) {
		key := p
		if wantDir {
			key += "/"
		}
		if k, ok := seen[key]; ok {
			return k, nil
		}
		fi, err := pr.Lstat(p)
		k := ""
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		case err != nil:
			return "", err
		case fi.IsDir() && !wantDir:
			k = "directory"
		case !fi.IsDir() && wantDir:
			k = kindOf(fi.Mode().Type())
			if fi.Mode().IsRegular() {
				k = "file"
			}
		}
		seen[key] = k
		return k, nil
	}
	for _, a := range m.Assets {
		found := false
		for d := path.Dir(a.Path); d != "." && !found; d = path.Dir(d) {
			k, err := kind(d, true)
			if err != nil {
				return err
			}
			if k != "" {
				r.fail("PATH_CONFLICT", a.Path, "%s is a %s on disk, so %s cannot be installed under it", d, k, a.Path)
				found = true
			}
		}
		if found {
			continue
		}
		if k, err := kind(a.Path, false); err != nil {
			return err
		} else if k != "" {
			r.fail("PATH_CONFLICT", a.Path, "%s is a %s on disk; an asset is a file", a.Path, k)
		}
	}
	return nil
}

// modeProblem says what is wrong with the mode of an installed file, got
// (permission bits with the setuid, setgid and sticky bits), against want,
// the mode its receipt records; or returns "". A setuid or setgid bit, or
// any write bit, is wrong whatever the receipt says.
func modeProblem(got, want fs.FileMode) string {
	switch {
	case got&(fs.ModeSetuid|fs.ModeSetgid) != 0:
		return fmt.Sprintf("mode %s has the setuid or setgid bit; installed files never do", octal(got))
	case got&0o222 != 0:
		return fmt.Sprintf("mode %s is writable; installed files are read-only (0444, or 0555 when executable)", octal(got))
	case got != want:
		return fmt.Sprintf("mode %s; its receipt records %s", octal(got), octal(want))
	}
	return ""
}

// octal formats a mode as chmod(1) writes it: 0555, 4755.
func octal(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}

// modeBits keeps the bits of a file's mode that G0B judges.
func modeBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// declaredMode adds MODE_MISMATCH to r when an asset declares a mode
// (schema_version 1.3) and the file the package holds for it (an archive
// member, 0644 or 0755, or a source file) is not executable as declared:
// the manifest, the archive and the tree say one thing.
func declaredMode(r *Result, a manifest.Asset, f File) {
	if a.Mode == "" || f.Mode == 0 {
		return
	}
	if exec := f.Mode&0o111 != 0; exec != (a.Mode == manifest.ModeExecutable) {
		r.fail("MODE_MISMATCH", a.Path, "declared mode %s, but the package holds it with mode %s", a.Mode, octal(f.Mode))
	}
}

// receiptModes adds MODE_MISMATCH for a receipt that records another mode
// than the installed manifest declares for a file: G0B judges the disk
// against the receipt, so the receipt must be the manifest's word.
func receiptModes(r *Result, m *manifest.Manifest, rc *plane.Receipt) {
	recorded := make(map[string]plane.ReceiptFile, len(rc.Files))
	for _, f := range rc.Files {
		recorded[f.Path] = f
	}
	for _, a := range m.Assets {
		if f, ok := recorded[a.Path]; ok && f.FileMode() != a.FileMode() {
			r.fail("MODE_MISMATCH", a.Path, "the receipt records mode %s, the manifest declares %s", octal(f.FileMode()), a.InstalledMode())
		}
	}
}
