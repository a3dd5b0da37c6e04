package cpv2

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/pkg/manifest"
	"github.com/stretchr/testify/require"
)

// packages holds CPv2 package directories (made by gen_packages.py there).
const packages = "../../testdata/cpv2/packages"

// frameworks is the specs registry the fixtures answer to.
func frameworks(specID string) (string, error) {
	if specID == "SPEC-GATE-001" {
		return "FMWK-001", nil
	}
	return "", errors.New("spec " + specID + " is not registered")
}

func convertDir(t *testing.T, dir string) *Converted {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(packages, dir, "manifest.json"))
	require.NoError(t, err)
	c, err := ConvertManifest(b, frameworks)
	require.NoError(t, err)
	return c
}

func classes(m *manifest.Manifest) map[string]string {
	out := map[string]string{}
	for _, a := range m.Assets {
		out[a.Path] = a.Classification
	}
	return out
}

func TestConvertModule(t *testing.T) {
	c := convertDir(t, "PKG-GATES-001")
	m := c.Manifest
	require.Equal(t, []string{"PKG-GATES-001", "0.3.1", "standard", "SPEC-GATE-001", "FMWK-001", "ho3", "1.2"},
		[]string{m.PackageID, m.Version, m.PackageType, m.SpecID, m.FrameworkID, m.PlaneID, m.SchemaVersion})
	require.Equal(t, []string{"PKG-DOCS-TOOLS-001@>=0.2.0"}, m.Dependencies)
	require.Equal(t, map[string]string{
		"modules/gates/run.py": "module", "modules/gates/g0.py": "module", "schemas/gate_result.schema.json": "spec",
		"config/gates.json": "config", "tests/test_g0.py": "test", "docs/gates.md": "doc",
	}, classes(m))
	require.Equal(t, []string{"docs/", "tests/"}, c.Roots)
	kept := m.Metadata["cpv2"].(map[string]any)
	require.Equal(t, "module", kept["package_type"])
	require.Equal(t, "HO3", kept["tier"])
	require.Regexp(t, `^sha256:[0-9a-f]{64}$`, kept["manifest_hash"])
	require.Equal(t, []any{"python>=3.11"}, kept["dependencies"])
	require.Equal(t, map[string]any{"modules/gates/g0.py": "gate", "schemas/gate_result.schema.json": "spec_asset",
		"config/gates.json": "registry", "docs/gates.md": "documentation"}, kept["classifications"])
	require.Equal(t, "platform-team", m.Metadata["author"], "CPv2's metadata is kept")
	require.Contains(t, c.Notes, "framework_id FMWK-001: the framework of spec SPEC-GATE-001")
	require.Contains(t, c.Notes, "package_type module is standard here")
	require.Empty(t, c.Verify(os.DirFS(filepath.Join(packages, "PKG-GATES-001"))))
	for _, a := range m.Assets {
		require.Equal(t, c.Hashes[a.Path], a.SHA256)
		require.Zero(t, a.Size, "sizes are stage's")
	}
}

func TestConvertTypesAndClassifications(t *testing.T) {
	c := convertDir(t, "PKG-DOCS-TOOLS-001")
	require.Equal(t, "standard", c.Manifest.PackageType)
	require.Equal(t, "0.2.0", c.Manifest.Version)
	require.Contains(t, c.Notes, `version "0.2" read as 0.2.0`)
	require.Equal(t, map[string]string{
		"lib/docs_tools/render.py": "library", "frameworks/FMWK-003_naming_conventions.md": "framework",
		"specs/SPEC-GATE-001/manifest.yaml": "spec", "docs/guide.md": "doc", "scripts/build_docs.sh": "script",
	}, classes(c.Manifest))
	require.Equal(t, "ho3", c.Manifest.PlaneID, "HO3 read as ho3")
	// docs/guide.md changed after CPv2 hashed it.
	f := c.Verify(os.DirFS(filepath.Join(packages, "PKG-DOCS-TOOLS-001")))
	require.Len(t, f, 1)
	require.Equal(t, "docs/guide.md", f[0].Path)
	require.Contains(t, f[0].Problem, "CPv2 declared sha256:")

	c = convertDir(t, "PKG-BASELINE-001")
	require.Equal(t, "standard", c.Manifest.PackageType)
	require.Equal(t, "1.0.0", c.Manifest.Version)
	require.Equal(t, "ho3", c.Manifest.PlaneID, "from the tier")
	require.Equal(t, map[string]string{"config/baseline.json": "config", "policies/base.cedar": "policy",
		"governed_prompts/PRM-BASE-001/template.md": "prompt"}, classes(c.Manifest))
	require.Empty(t, c.Roots)
	require.Empty(t, c.Verify(os.DirFS(filepath.Join(packages, "PKG-BASELINE-001"))), "sha256: + hex hashes")

	c = convertDir(t, "PKG-HANDBOOK-001")
	require.Equal(t, "standard", c.Manifest.PackageType)
	require.Equal(t, map[string]string{"docs/handbook/index.md": "doc", "docs/handbook/glossary.md": "doc"}, classes(c.Manifest))
	require.Contains(t, c.Notes, `docs/handbook/glossary.md: classification "glossary" is unknown, doc from its path`)
	require.Equal(t, []string{"docs/"}, c.Roots)
}

func TestConvertRefused(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(packages, "refused", "REFUSED.json"))
	require.NoError(t, err)
	var reasons map[string]string
	require.NoError(t, json.Unmarshal(b, &reasons))
	require.Len(t, reasons, 6)
	for name, why := range reasons {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(packages, "refused", name))
			require.NoError(t, err)
			_, err = ConvertManifest(b, frameworks)
			require.Error(t, err)
			require.Equal(t, "MANIFEST_INVALID", err.(*Error).Code())
			require.Contains(t, err.Error(), why)
		})
	}
	for _, tc := range []struct{ doc, want string }{
		{`[]`, "not a JSON object"},
		{`{"package_id":"PKG-X","version":"1.0.0","package_type":"module","spec_id":"SPEC-NOPE-001"}`, "spec SPEC-NOPE-001 is not registered"},
		{`{"package_id":"PKG-X","version":"1.0.0","package_type":"module"}`, "spec_id is missing"},
		{`{"package_id":"PKG-X","version":"one","package_type":"module","spec_id":"SPEC-GATE-001"}`, `version "one": not a semantic version`},
		{`{"package_id":"PKG-X","version":"1.0.0","package_type":"module","spec_id":"SPEC-GATE-001","assets":{}}`, "assets is not an array"},
		{`{"package_id":"PKG-X","version":"1.0.0","package_type":"module","spec_id":"SPEC-GATE-001","assets":[{"path":"tier.json","classification":"other"}]}`, "no package may write under tier.json"},
		{`{"package_id":"PKG-X","version":"1.0.0","package_type":"module","spec_id":"SPEC-GATE-001","assets":[{"path":"a/b","classification":"module"},{"path":"A/b","classification":"module"}]}`, "breaks our manifest rules"},
	} {
		_, err := ConvertManifest([]byte(tc.doc), frameworks)
		require.ErrorContains(t, err, tc.want, tc.doc)
	}
}

func TestConvertedIsOurs(t *testing.T) {
	// With the hashes and sizes stage fills, a converted manifest is one
	// of ours, and converting is deterministic.
	for _, dir := range []string{"PKG-GATES-001", "PKG-DOCS-TOOLS-001", "PKG-BASELINE-001", "PKG-HANDBOOK-001"} {
		c := convertDir(t, dir)
		for i := range c.Manifest.Assets {
			c.Manifest.Assets[i].Size = 1
		}
		b, err := c.Manifest.Marshal()
		require.NoError(t, err)
		_, err = manifest.Parse(b)
		require.NoError(t, err, dir)
		again := convertDir(t, dir)
		for i := range again.Manifest.Assets {
			again.Manifest.Assets[i].Size = 1
		}
		require.Equal(t, c, again)
	}
}

func FuzzConvertManifest(f *testing.F) {
	for _, dir := range []string{"PKG-GATES-001", "PKG-DOCS-TOOLS-001", "PKG-BASELINE-001", "PKG-HANDBOOK-001"} {
		b, err := os.ReadFile(filepath.Join(packages, dir, "manifest.json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ConvertManifest(b, frameworks)
		if err != nil {
			return
		}
		if c.Manifest.FrameworkID != "FMWK-001" || !manifest.ValidPackageID(c.Manifest.PackageID) {
			t.Fatalf("converted %+v", c.Manifest)
		}
		for _, a := range c.Manifest.Assets {
			if a.SHA256 != "" && a.SHA256 != c.Hashes[a.Path] {
				t.Fatalf("asset %s: %s, declared %s", a.Path, a.SHA256, c.Hashes[a.Path])
			}
		}
	})
}
