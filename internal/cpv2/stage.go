package cpv2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/stage"
	"github.com/control-plane/cp/pkg/manifest"
)

// StageOptions say which CPv2 package to stage.
type StageOptions struct {
	PackageID string // must be the CPv2 manifest's package_id
	// Manifest is the CPv2 manifest.json; Files the directory its asset
	// paths are under: the package directory itself (a packaged CPv2
	// package), or the checkout's root (an installed one, whose manifest
	// is in installed/<PKG-ID>/).
	Manifest, Files string
	Out             string // the archive's directory; "": <root>/_staging
	Gate            gate.Options
}

// Staged is what Stage made: stage's result, and what the conversion did.
type Staged struct {
	stage.Result
	CPv2 StagedFrom `json:"cpv2"`
}

// StagedFrom is the CPv2 side of a staged package.
type StagedFrom struct {
	Manifest string   `json:"manifest"` // the CPv2 manifest's sha256
	Roots    []string `json:"roots"`    // governed roots its assets need beyond the defaults
	Notes    []string `json:"notes"`
	LeftOut  []string `json:"left_out"` // files beside the manifest it does not declare
}

// FrameworkOfPlane answers the framework a spec registered on the plane at
// root answers to (SPEC_NOT_FOUND otherwise).
func FrameworkOfPlane(root string) FrameworkOf {
	return func(specID string) (string, error) {
		rows, err := registry.Read(root, registry.Specs)
		if err != nil {
			return "", err
		}
		for _, r := range rows {
			if r["spec_id"] == specID {
				return r["framework_id"], nil
			}
		}
		e := refusef("SPEC_NOT_FOUND", "spec %s is not registered on this plane: a package answers to a registered spec", specID)
		e.WithHint("register it first: cp-pkg register-spec " + specID + " --src DIR")
		return "", e
	}
}

// Stage stages a CPv2 package for the plane at root: its manifest is
// converted (ConvertManifest, the spec's framework from the plane's
// registry), the files checked against the hashes CPv2 declared (Verify:
// CPV2_PACKAGE_CHANGED names each file that differs), the roots it needs
// checked against config/governed_roots.json (NOT_GOVERNED, with the
// trust add --governed-root that adds them), then the declared files and
// the converted manifest are copied into a private directory outside the
// plane and staged from there (stage.Archive: hashes and sizes filled,
// preflight, a deterministic archive). The CPv2 directory is only read: the
// manifest stage writes is ours, never CPv2's, and it is what gets signed.
func Stage(ctx context.Context, root string, opts StageOptions) (*Staged, error) {
	raw, err := regfile.ReadFile(opts.Manifest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, refusef("MANIFEST_INVALID", "%s: no CPv2 manifest there", opts.Manifest)
	} else if err != nil {
		return nil, err
	}
	c, err := ConvertManifest(raw, FrameworkOfPlane(root))
	if err != nil {
		return nil, err
	}
	if c.Manifest.PackageID != opts.PackageID {
		return nil, refusef("PACKAGE_ID_MISMATCH", "%s declares package %s, not %s", opts.Manifest, c.Manifest.PackageID, opts.PackageID)
	}
	from := StagedFrom{Manifest: plane.SHA256(raw), Roots: c.Roots, Notes: c.Notes, LeftOut: []string{}}
	if from.Roots == nil {
		from.Roots = []string{}
	}
	files, err := os.OpenRoot(opts.Files)
	if err != nil {
		return nil, err
	}
	defer files.Close()
	if fs := c.Verify(files.FS()); len(fs) > 0 {
		var what []string
		for _, f := range fs {
			what = append(what, f.Path+" ("+f.Problem+")")
		}
		e := refusef("CPV2_PACKAGE_CHANGED", "%s: %d file(s) are not what its CPv2 manifest declared: %s", c.Manifest.PackageID, len(fs), strings.Join(what, "; "))
		e.WithDetails(map[string]any{"findings": fs})
		return nil, e
	}
	governed, err := plane.GovernedRoots(root)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, r := range c.Roots {
		if !slices.Contains(governed, r) && !slices.Contains(governed, strings.TrimSuffix(r, "/")) {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		e := refusef("NOT_GOVERNED", "%s has files under %s, which this plane does not govern", c.Manifest.PackageID, strings.Join(missing, ", "))
		e.WithHint("add them by the trust-change path (admin): cp-install trust add --governed-root " + strings.Join(missing, " --governed-root ")).
			WithDetails(map[string]any{"roots": missing})
		return nil, e
	}
	if filepath.Clean(filepath.Dir(opts.Manifest)) == filepath.Clean(opts.Files) {
		if from.LeftOut, err = leftOut(files.FS(), c.Manifest); err != nil {
			return nil, err
		}
		for _, p := range from.LeftOut {
			from.Notes = append(from.Notes, fmt.Sprintf("%s is not declared in the CPv2 manifest: left out", p))
		}
	}

	scratch, err := os.MkdirTemp("", "cp-cpv2-stage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	if err := copyAssets(files, scratch, c.Manifest); err != nil {
		return nil, err
	}
	mb, err := c.Manifest.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(scratch, manifest.FileName), mb, 0o644); err != nil {
		return nil, err
	}
	res, err := stage.Archive(ctx, root, stage.Options{PackageID: opts.PackageID, Src: scratch, Out: opts.Out, Gate: opts.Gate})
	if err != nil {
		return nil, err
	}
	return &Staged{Result: *res, CPv2: from}, nil
}

// copyAssets copies each asset of m from files into dir, executable
// files as 0755 (stage gives them mode 0555), others 0644. Each is read
// inside files (os.Root: no path out of it) and must be a regular file.
func copyAssets(files *os.Root, dir string, m *manifest.Manifest) error {
	for _, a := range m.Assets {
		f, err := regfile.OpenIn(files, a.Path)
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o644)
		if st.Mode()&0o111 != 0 {
			mode = 0o755
		}
		dst := filepath.Join(dir, filepath.FromSlash(a.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			return err
		}
	}
	return nil
}

// leftOut lists the files in a package directory that m does not declare
// (the manifest itself aside), sorted.
func leftOut(fsys fs.FS, m *manifest.Manifest) ([]string, error) {
	declared := map[string]bool{manifest.FileName: true}
	for _, a := range m.Assets {
		declared[a.Path] = true
	}
	out := []string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !declared[path.Clean(p)] {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
