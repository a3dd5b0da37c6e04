package install

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/internal/trust"
)

// RootsAdded is the Change of a trust change that added governed roots.
const RootsAdded = "roots_added"

// rootRE is a governed root: one top directory of the plane, with its
// trailing slash.
var rootRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}/$`) })

// planeDirs are top directories of the plane that are never governed
// roots: the reserved paths and the tools' own directories (DESIGN.md §4).
var planeDirs = []string{"work_orders/", "blobs/", "sessions/"}

// CheckRoot refuses (GOVERNED_ROOT_INVALID) a name that cannot be a
// governed root: not one lower-case top directory written "name/", or one
// of the plane's own directories.
func CheckRoot(r string) error {
	if !rootRE().MatchString(r) {
		return refuse("GOVERNED_ROOT_INVALID", "governed root %q: want one top directory of the plane, lower case, written with its slash (docs/)", r)
	}
	if plane.Under(r, plane.Reserved) || slices.Contains(planeDirs, r) {
		return refuse("GOVERNED_ROOT_INVALID", "governed root %q is the plane's own: no package may write there", r)
	}
	return nil
}

// AddGovernedRoots adds roots to config/governed_roots.json by the one
// trust-changing path (DESIGN.md §6): the next kernel patch release, built
// by the tool with the longer list and installed on HO3, HO2 and HO1 in
// one journaled change, recorded as INSTALL_STARTED, INSTALLED and
// TRUST_CHANGED (change roots_added). Roots already governed are skipped;
// when none is new nothing is written (Change "none"). Refused: a root
// that is not one (GOVERNED_ROOT_INVALID), a root under which a tier
// already holds files (ORPHAN: no package owns them, G0B would fail), and
// what Trust refuses (KERNEL_MISMATCH, STATE_UNSAFE, HASH_MISMATCH).
func AddGovernedRoots(ctx context.Context, root string, roots []string, opts TrustOptions) (*TrustResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := checkHO3(root); err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		return nil, &Error{code: "USAGE", Msg: "no governed root to add"}
	}
	for _, r := range roots {
		if err := CheckRoot(r); err != nil {
			return nil, err
		}
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
	current, err := plane.GovernedRoots(root)
	if err != nil {
		return nil, err
	}
	change := &TrustChange{Change: "none", Roots: []string{}, GovernedRoots: slices.Clone(current)}
	for _, r := range roots {
		if !slices.Contains(change.GovernedRoots, r) && !slices.Contains(change.GovernedRoots, strings.TrimSuffix(r, "/")) {
			change.Roots = append(change.Roots, r)
			change.GovernedRoots = append(change.GovernedRoots, r)
		}
	}
	if len(change.Roots) == 0 {
		return &TrustResult{TrustChange: *change}, nil
	}
	change.Change = RootsAdded
	for _, t := range plane.Layout {
		for _, r := range change.Roots {
			if f := firstFile(filepath.Join(root, filepath.FromSlash(t.Dir), r)); f != "" {
				rel, _ := filepath.Rel(root, f)
				return nil, refuse("ORPHAN", "%s already holds %s, which no package owns: as a governed root, %s would fail G0B; move it out of the plane first",
					t.Tier, filepath.ToSlash(rel), r)
			}
		}
	}
	if err := kernelWhole(root, "a roots change"); err != nil {
		return nil, err
	}
	trusted, err := trust.Load(root)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(plane.GovernedRootsConfig{GovernedRoots: change.GovernedRoots}, "", "  ")
	if err != nil {
		return nil, err
	}
	res, err := installKernel(ctx, root, trusted, append(b, '\n'), change, opts)
	out := &TrustResult{TrustChange: *change, Kernel: res}
	if res != nil {
		out.LedgerEntryID, out.LedgerSeq = res.LedgerEntryID, res.LedgerSeq
	}
	return out, err
}

// firstFile returns the first thing other than a directory found under
// dir (dir itself, if it is not a directory), or "" when there is none.
func firstFile(dir string) string {
	found := ""
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == dir {
				return fs.SkipAll
			}
			found = p
			return fs.SkipAll
		}
		if !d.IsDir() {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) && found == "" {
		found = dir
	}
	return found
}
