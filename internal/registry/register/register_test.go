package register_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/registry/register"
	"github.com/stretchr/testify/require"
)

// framework is a framework document of FMWK-DEMO-001 at version with the
// given invariant lines.
func framework(version string, lines ...string) string {
	doc := "---\nframework_id: FMWK-DEMO-001\ntitle: Demo law\nversion: " + version + "\nstatus: active\n---\n# Demo law\n\n"
	for _, l := range lines {
		doc += "- " + l + "\n"
	}
	return doc
}

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

// code is the stable code of a register error, or "" for nil.
func code(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	e, ok := err.(*register.Error)
	require.True(t, ok, "error %T: %v", err, err)
	return e.Code()
}

// TestFrameworkRules drives the registration rules without a binary: the
// same rules cp-pkg register-framework and check-framework reach.
func TestFrameworkRules(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	src := t.TempDir()
	v1 := write(t, src, "v1.md", framework("1.0.0", "MUST declare every file.", "MUST sign every package."))

	o, err := register.Framework(ctx, root, plane.Actor{Name: "tester"}, "FMWK-DEMO-001", v1, nil)
	require.NoError(t, err)
	require.Equal(t, true, o.Result.(map[string]any)["changed"])
	require.NotEmpty(t, o.LedgerEntryID, "a registration is recorded")

	// The same document again: a no-op, recorded nowhere.
	o, err = register.Framework(ctx, root, plane.Actor{Name: "tester"}, "FMWK-DEMO-001", v1, nil)
	require.NoError(t, err)
	require.Equal(t, false, o.Result.(map[string]any)["changed"])
	require.Empty(t, o.LedgerEntryID)

	tests := []struct {
		name, doc, code string
	}{
		{"changed text, same version", framework("1.0.0", "MUST declare every file.", "MUST sign every package.", "SHOULD be small."), "VERSION_NOT_NEWER"},
		{"lower version", framework("0.9.0", "MUST declare every file."), "VERSION_NOT_NEWER"},
		{"a MUST dropped", framework("1.1.0", "MUST declare every file.", "SHOULD sign every package."), "BREAKING_CHANGE"},
		{"another framework id", "---\nframework_id: FMWK-OTHER-001\ntitle: x\nversion: 2.0.0\nstatus: active\n---\n", "FRAMEWORK_INVALID"},
		{"a MUST added", framework("1.2.0", "MUST declare every file.", "MUST sign every package.", "MUST log every refusal."), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := register.Framework(ctx, root, plane.Actor{Name: "tester"}, "FMWK-DEMO-001", write(t, src, tt.name+".md", tt.doc), nil)
			require.Equal(t, tt.code, code(t, err), "%v", err)
			if tt.code == "VERSION_NOT_NEWER" || tt.code == "BREAKING_CHANGE" {
				require.NotEmpty(t, o.LedgerEntryID, "a refusal is recorded")
				require.NotNil(t, err.(*register.Error).ErrorResult(), "a refusal carries its result")
			}
		})
	}

	// check-framework judges a candidate against the registered 1.2.0.
	o, err = register.CheckFramework(ctx, root, plane.Actor{Name: "tester"}, "FMWK-DEMO-001", write(t, src, "next.md", framework("1.3.0", "MUST declare every file.")))
	require.Equal(t, "BREAKING_CHANGE", code(t, err))
	require.NotEmpty(t, o.LedgerEntryID)
	_, err = register.CheckFramework(ctx, root, plane.Actor{Name: "tester"}, "FMWK-NONE-001", write(t, src, "none.md", "---\nframework_id: FMWK-NONE-001\ntitle: x\nversion: 1.0.0\nstatus: active\n---\n"))
	require.Equal(t, "FRAMEWORK_NOT_FOUND", code(t, err))
}

// TestSpecLookups: a spec's framework, and a framework's one active spec.
func TestSpecLookups(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	fw, err := register.SpecFramework(root, "SPEC-KERNEL-001")
	require.NoError(t, err)
	require.Equal(t, "FMWK-KERNEL-001", fw)
	_, err = register.SpecFramework(root, "SPEC-NONE-001")
	require.Equal(t, "SPEC_NOT_FOUND", code(t, err))

	spec, unregistered, err := register.FrameworkSpec(root, "FMWK-KERNEL-001", "PKG-X-001")
	require.NoError(t, err)
	require.Equal(t, "SPEC-KERNEL-001", spec)
	require.False(t, unregistered)
	spec, unregistered, err = register.FrameworkSpec(root, "FMWK-NONE-001", "PKG-X-001")
	require.NoError(t, err)
	require.Equal(t, "SPEC-X-001", spec)
	require.True(t, unregistered)
}

// TestCPv2SpecPlane: a CPv2 spec's plane_id is this plane's plane_id in
// any case, or its plane_name; another plane's is refused and recorded.
func TestCPv2SpecPlane(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	actor := plane.Actor{Name: "tester"}
	_, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: actor, PlaneName: "cpv2-import"})
	require.NoError(t, err)
	src := t.TempDir()
	fw := write(t, src, "FMWK-7_law.md", "# FMWK-7: Law\n**Version:** 1.0\n\n- [MUST] hold.\n")
	o, err := register.Framework(ctx, root, actor, "FMWK-7", fw, nil)
	require.NoError(t, err)
	res := o.Result.(map[string]any)
	require.Equal(t, "1.0.0", res["version"])
	require.Equal(t, []string{`version "1.0" read as 1.0.0`, "no status stated: active"}, res["notes"])

	for i, tc := range []struct{ planeID, code string }{
		{"ho3", ""}, {"HO3", ""}, {"cpv2-import", ""}, {"CPV2-IMPORT", "PLANE_MISMATCH"}, {"ho1", "PLANE_MISMATCH"}, {"prod-eu", "PLANE_MISMATCH"},
	} {
		id := fmt.Sprintf("SPEC-P-%d", i)
		dir := filepath.Join(src, id)
		write(t, dir, "manifest.yaml", "spec_id: "+id+"\nframework_id: FMWK-7\nplane_id: "+tc.planeID+"\nassets: [modules/p/**]\n")
		o, err := register.Spec(ctx, root, actor, id, dir, nil)
		require.Equal(t, tc.code, code(t, err), tc.planeID)
		if tc.code != "" {
			require.ErrorContains(t, err, fmt.Sprintf("spec %s is for plane %q; this is plane ho3 (cpv2-import)", id, tc.planeID))
			require.NotEmpty(t, o.LedgerEntryID, "the refusal is recorded")
		}
	}
}
