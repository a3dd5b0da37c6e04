package spec

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"lib/**", "lib/a.py", true},
		{"lib/**", "lib/x/y/z.py", true},
		{"lib/**", "lib", true}, // ** matches zero segments
		{"lib/**", "libx/a.py", false},
		{"config/*.json", "config/a.json", true},
		{"config/*.json", "config/sub/a.json", false},
		{"config/demo.json", "config/demo.json", true},
		{"**/x.md", "a/b/x.md", true},
		{"a/**/z", "a/z", true},
		{"a/**/z", "a/b/c/z", true},
		{"a/**/z", "a/b/c/y", false},
		{"a/?.md", "a/b.md", true},
		{"a/[bc].md", "a/d.md", false},
	} {
		require.Equal(t, tc.want, Match(tc.pattern, tc.name), "%s ~ %s", tc.pattern, tc.name)
	}
}

func TestParse(t *testing.T) {
	s, err := Parse([]byte(`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["lib/**"]}`), false)
	require.NoError(t, err)
	require.Equal(t, "1.0.0", s.Version)
	require.Equal(t, "active", s.Status)
	require.True(t, s.Covers("lib/a/b.py"))
	require.False(t, s.Covers("config/a.json"))

	y, err := Parse([]byte("spec_id: SPEC-1\nframework_id: FMWK-1\nassets: [\"lib/**\"]\n"), true)
	require.NoError(t, err)
	require.Equal(t, s, y)

	for _, bad := range []struct {
		doc  string
		yaml bool
	}{
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":[]}`, false},
		{`{"spec_id":"spec-1","framework_id":"FMWK-1","assets":["a"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["../a"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["/a"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a//b"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a/[b"]}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"extra":1}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"version":"v1"}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"status":"gone"}`, false},
		{`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"]} {}`, false},
		{"spec_id: SPEC-1\nframework_id: FMWK-1\nassets: [a]\nunknown: 1\n", true},
	} {
		_, err := Parse([]byte(bad.doc), bad.yaml)
		require.Error(t, err, "%s", bad.doc)
		require.Equal(t, "SPEC_INVALID", err.(*Error).Code())
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["lib/**"]}`), false)
	f.Add([]byte("spec_id: SPEC-1\nframework_id: FMWK-1\nassets: [\"lib/**\"]\n"), true)
	// CPv2's specs, with every field of theirs.
	for _, dir := range []string{"SPEC-GATE-001", "SPEC-DOCS-002", "SPEC-RUNTIME-003", "refused/SPEC-ORPHAN-001"} {
		for _, name := range []string{"manifest.yaml", "manifest.json"} {
			if b, err := os.ReadFile(filepath.Join(cpv2Dir, dir, name)); err == nil {
				f.Add(b, name == "manifest.yaml")
			}
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte, isYAML bool) {
		s, err := Parse(doc, isYAML)
		if err != nil {
			return
		}
		refs, err := s.Refs()
		if err != nil {
			t.Fatalf("Parse accepted dependencies Refs refuses: %v", err)
		}
		for _, r := range refs {
			if r.Kind == RefSpec && r.ID == s.SpecID {
				t.Fatalf("accepted a spec depending on itself")
			}
		}
		for _, p := range s.Assets {
			if p == "" || p[0] == '/' {
				t.Fatalf("accepted pattern %q", p)
			}
			_ = s.Covers(p)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("lib/**/x", "lib/a/b/x")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if checkPattern(pattern) != nil {
			return
		}
		if Match(pattern, name) && !Match(pattern+"/**", name) {
			t.Fatalf("%q matches %q but %q does not", pattern, name, pattern+"/**")
		}
	})
}

func TestVersionMustBeFull(t *testing.T) {
	for _, v := range []string{"1", "1.2", "1.2.3+build", "v1.2.3"} {
		_, err := Parse([]byte(`{"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a"],"version":"`+v+`"}`), false)
		require.Error(t, err, v)
	}
}

// cpv2Dir holds spec manifests written as the Python Control Plane v2
// wrote them, with every field of theirs.
const cpv2Dir = "../../testdata/cpv2/specs"

func parseFixture(t *testing.T, dir string) (*Spec, error) {
	t.Helper()
	for _, name := range []string{"manifest.yaml", "manifest.json"} {
		b, err := os.ReadFile(filepath.Join(cpv2Dir, dir, name))
		if err == nil {
			return Parse(b, name == "manifest.yaml")
		}
	}
	t.Fatalf("no manifest in %s", dir)
	return nil, nil
}

func TestCPv2Specs(t *testing.T) {
	s, err := parseFixture(t, "SPEC-GATE-001")
	require.NoError(t, err)
	require.Equal(t, "HO3", s.PlaneID)
	require.Equal(t, "HO3", s.Tier)
	require.Equal(t, "active", s.Status)
	require.Len(t, s.Interfaces, 2)
	require.Equal(t, "run_gates", s.Interfaces[0].(map[string]any)["name"])
	require.Len(t, s.Acceptance, 3)
	require.Equal(t, "Every gate result validates against gate_result.schema.json.", s.Acceptance[2])
	require.Equal(t, []string{"Choosing which packages to install.", "Signing packages (see SPEC-SIGN-001, not yet written)."}, s.NonGoals)
	refs, err := s.Refs()
	require.NoError(t, err)
	require.Equal(t, []Ref{
		{Kind: RefFramework, ID: "FMWK-000", Text: "FMWK-000"},
		{Kind: RefFramework, ID: "FMWK-001", Constraint: ">=1.1.0", Text: "FMWK-001@>=1.1.0"},
		{Text: "pyyaml>=6.0"},
	}, refs)
	require.True(t, refs[1].Allows("1.1.0"))
	require.False(t, refs[1].Allows("1.0.9"))
	require.True(t, refs[0].Allows("0.0.1"))

	s, err = parseFixture(t, "SPEC-DOCS-002")
	require.NoError(t, err)
	require.Equal(t, "draft", s.Status)
	require.Equal(t, "ho1", s.Tier)
	refs, err = s.Refs()
	require.NoError(t, err)
	require.Equal(t, []Ref{
		{Kind: RefSpec, ID: "SPEC-GATE-001", Constraint: "^1.0.0", Text: "SPEC-GATE-001@^1.0.0"},
		{Kind: RefSpec, ID: "SPEC-GATE-001", Constraint: ">=1.2.0", Text: `{"spec_id":"SPEC-GATE-001","version":">=1.2.0"}`},
		{Kind: RefFramework, ID: "FMWK-000", Text: `{"framework_id":"FMWK-000"}`},
		{Kind: RefPackage, ID: "PKG-DOCS-TOOLS-001", Constraint: ">=0.2.0", Text: "PKG-DOCS-TOOLS-001@>=0.2.0"},
		{Text: `{"service":"docs-site"}`},
	}, refs)

	s, err = parseFixture(t, "SPEC-RUNTIME-003")
	require.NoError(t, err)
	require.Equal(t, "HO1", s.Tier)
	require.Equal(t, "schemas/evidence_entry.schema.json", s.Interfaces[0].(map[string]any)["path"])
	refs, err = s.Refs()
	require.NoError(t, err)
	require.Equal(t, RefSpec, refs[0].Kind)
	require.Equal(t, "^1.0.0", refs[0].Constraint)

	for _, dir := range []string{"refused/SPEC-ELSEWHERE-001", "refused/SPEC-ORPHAN-001", "refused/SPEC-BADDEP-001"} {
		_, err := parseFixture(t, dir)
		require.NoError(t, err, "%s parses: registration refuses it against the plane", dir)
	}
}

func TestCPv2Fields(t *testing.T) {
	base := `"spec_id":"SPEC-1","framework_id":"FMWK-1","assets":["a/**"]`
	for _, tc := range []struct {
		extra, err string
	}{
		{`"status":"draft"`, ""},
		{`"plane_id":"ho3","tier":"Ho2"`, ""},
		{`"interfaces":["x",{"name":"y"}],"acceptance":[],"non_goals":["z"]`, ""},
		{`"dependencies":["SPEC-2","FMWK-1@~1.2.0","PKG-X@=1.0.0","libfoo",{"id":"SPEC-3","version":"^2.0.0"},{"name":"db"}]`, ""},
		{`"plane_id":""`, "/plane_id"},
		{`"tier":"ho4"`, `tier "ho4": want ho1, ho2 or ho3`},
		{`"tier":3`, "/tier"},
		{`"interfaces":[1]`, "/interfaces/0"},
		{`"acceptance":"all of it"`, "/acceptance"},
		{`"non_goals":[{"x":1}]`, "/non_goals/0"},
		{`"dependencies":[7]`, "/dependencies/0"},
		{`"dependencies":["SPEC-lower"]`, `dependencies[0] "SPEC-lower": "SPEC-lower" is not a spec id`},
		{`"dependencies":["FMWK-"]`, `is not a framework id`},
		{`"dependencies":["PKG-X@>>1"]`, `version constraint ">>1"`},
		{`"dependencies":[{"spec_id":"SPEC-2","version":2}]`, "version must be a string"},
		{`"dependencies":["SPEC-1"]`, "spec SPEC-1 depends on itself"},
		{`"status":"proposed"`, "/status"},
		{`"plane":"ho3"`, "plane"},
	} {
		t.Run(tc.extra, func(t *testing.T) {
			doc := "{" + base + "," + tc.extra + "}"
			s, err := Parse([]byte(doc), false)
			if tc.err == "" {
				require.NoError(t, err)
				_, err = s.Refs()
				require.NoError(t, err)
				// The YAML form reads the same.
				y, err := Parse([]byte(doc), true)
				require.NoError(t, err)
				require.Equal(t, s.Status, y.Status)
				return
			}
			require.Error(t, err)
			require.Equal(t, "SPEC_INVALID", err.(*Error).Code())
			require.Contains(t, err.Error(), tc.err)
		})
	}
}
