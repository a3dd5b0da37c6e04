package register

import (
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/registry"
)

// SpecFramework looks up the framework of a registered spec in the specs
// registry of the plane at root: SPEC_NOT_FOUND when the spec is not there.
func SpecFramework(root, specID string) (string, error) {
	rows, err := registry.Read(root, registry.Specs)
	if err != nil {
		return "", err
	}
	for _, r := range rows {
		if r["spec_id"] != specID {
			continue
		}
		s, err := registry.ParseSpec(r)
		if err != nil {
			return "", err
		}
		return s.FrameworkID, nil
	}
	return "", errorf("SPEC_NOT_FOUND", "%s is not in the specs registry of the plane at %s", specID, root).
		WithHint("register it with cp-pkg register-spec %s --src DIR, or give --framework FMWK-ID", specID)
}

// DerivedSpec is the spec id a package is given when its framework has no
// spec registered yet: SPEC-<name of the package>, to register before
// staging.
func DerivedSpec(pkgID string) string { return "SPEC-" + strings.TrimPrefix(pkgID, "PKG-") }

// FrameworkSpec chooses the spec of a package made with a framework and no
// spec: the one active spec of the framework in the specs registry of the
// plane at root; with none, DerivedSpec, which the caller reports as still
// to register (unregistered true). Several active specs are ambiguous
// (SPEC_AMBIGUOUS): the author must choose.
func FrameworkSpec(root, fwID, pkgID string) (specID string, unregistered bool, err error) {
	derived := DerivedSpec(pkgID)
	rows, err := registry.Read(root, registry.Specs)
	if err != nil {
		return "", false, err
	}
	var found []string
	for _, r := range rows {
		if r["framework_id"] == fwID && r["status"] == registry.StatusActive {
			found = append(found, r["spec_id"])
		}
	}
	switch len(found) {
	case 0:
		return derived, true, nil
	case 1:
		return found[0], false, nil
	}
	slices.Sort(found)
	return "", false, errorf("SPEC_AMBIGUOUS", "framework %s has %d active specs (%s); choose one with --spec", fwID, len(found), strings.Join(found, ", ")).
		WithDetails(map[string]any{"specs": found})
}
