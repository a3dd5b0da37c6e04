package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

var (
	hashA = "sha256:" + strings.Repeat("a", 64)
	hashB = "sha256:" + strings.Repeat("b", 64)
)

// sample is a valid manifest exercising every member.
var sample = `{
  "schema_version": "1.2",
  "package_id": "PKG-DEMO-001",
  "version": "1.2.0",
  "package_type": "standard",
  "spec_id": "SPEC-DEMO-001",
  "framework_id": "FMWK-001",
  "plane_id": "ho3",
  "dependencies": [
    "PKG-KERNEL-001@>=1.0.0,<2.0.0",
    "PKG-LIB"
  ],
  "assets": [
    {
      "path": "lib/demo.py",
      "sha256": "` + hashA + `",
      "size": 12,
      "classification": "library"
    },
    {
      "path": "specs/SPEC-DEMO-001/manifest.json",
      "sha256": "` + hashB + `",
      "size": 0,
      "classification": "spec"
    }
  ],
  "metadata": {
    "author": "ops <ops@example.com>",
    "notes": [
      1,
      2.50,
      {
        "x": null
      }
    ]
  }
}
`

// sampleCanonical is the text sample's manifest hash covers.
const sampleCanonical = `{"assets":[{"classification":"library","path":"lib/demo.py","sha256":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":12},` +
	`{"classification":"spec","path":"specs/SPEC-DEMO-001/manifest.json","sha256":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":0}],` +
	`"dependencies":["PKG-KERNEL-001@>=1.0.0,<2.0.0","PKG-LIB"],"framework_id":"FMWK-001","package_id":"PKG-DEMO-001",` +
	`"package_type":"standard","plane_id":"ho3","schema_version":"1.2","spec_id":"SPEC-DEMO-001","version":"1.2.0"}`

// mutate returns sample decoded, changed by f, and encoded again.
func mutate(t testing.TB, f func(m map[string]any)) []byte {
	t.Helper()
	v, err := jcs.Decode([]byte(sample))
	require.NoError(t, err)
	m := v.(map[string]any)
	f(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func asset(m map[string]any, i int) map[string]any {
	return m["assets"].([]any)[i].(map[string]any)
}

// withPaths replaces the sample's assets by one per path.
func withPaths(paths ...string) func(m map[string]any) {
	return func(m map[string]any) {
		var as []any
		for _, p := range paths {
			as = append(as, map[string]any{"path": p, "sha256": hashA, "size": 1, "classification": "doc"})
		}
		m["assets"] = as
	}
}

func set(key string, v any) func(m map[string]any) {
	return func(m map[string]any) { m[key] = v }
}

func setAsset(key string, v any) func(m map[string]any) {
	return func(m map[string]any) { asset(m, 0)[key] = v }
}

func TestParseSample(t *testing.T) {
	m, err := Parse([]byte(sample))
	require.NoError(t, err)
	want := &Manifest{
		SchemaVersion: "1.2",
		PackageID:     "PKG-DEMO-001",
		Version:       "1.2.0",
		PackageType:   "standard",
		SpecID:        "SPEC-DEMO-001",
		FrameworkID:   "FMWK-001",
		PlaneID:       "ho3",
		Dependencies:  []string{"PKG-KERNEL-001@>=1.0.0,<2.0.0", "PKG-LIB"},
		Assets: []Asset{
			{Path: "lib/demo.py", SHA256: hashA, Size: 12, Classification: "library"},
			{Path: "specs/SPEC-DEMO-001/manifest.json", SHA256: hashB, Size: 0, Classification: "spec"},
		},
		Metadata: map[string]any{
			"author": "ops <ops@example.com>",
			"notes":  []any{json.Number("1"), json.Number("2.50"), map[string]any{"x": nil}},
		},
	}
	require.Equal(t, want, m)
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		f    func(m map[string]any)
	}{
		{"no metadata", func(m map[string]any) { delete(m, "metadata") }},
		{"empty metadata", set("metadata", map[string]any{})},
		{"no dependencies", set("dependencies", []any{})},
		{"no assets", set("assets", []any{})},
		{"pre-release", set("version", "2.0.0-rc.1")},
		{"pre-release with hyphens", set("version", "0.0.1-alpha-1.x--y.0")},
		{"every package type", set("package_type", "prompt_pack")},
		{"plane ho1", set("plane_id", "ho1")},
		{"every operator", set("dependencies", []any{"PKG-A@>=1.0.0", "PKG-B@<=1.0.0", "PKG-C@>1.0.0", "PKG-D@<2.0.0-0",
			"PKG-E@=1.2.3", "PKG-F@^0.2.0", "PKG-G@~1.2.0-rc.1", "PKG-H@>=1.0.0,<2.0.0,>1.0.0"})},
		{"size as 12.0", setAsset("size", json.Number("12.0"))},
		{"size as 1.2e1", setAsset("size", json.Number("1.2e1"))},
		{"largest size", setAsset("size", json.Number("9007199254740991"))},
		{"deep path", withPaths("a/b/c/d/e/f.txt", "a/b/c/g.txt", "a/B2/x")},
		{"unicode path", withPaths("docs/résumé.md", "docs/日本.md")},
		{"dotted names", withPaths(".hidden", "a/.b", "a/...", "a/b.c.d")},
		{"manifest.json below the root", withPaths("x/manifest.json", "manifest.json.bak")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(mutate(t, tt.f))
			require.NoError(t, err)
		})
	}
}

// refusals lists manifests Parse must refuse, with the JSON pointer and a
// fragment of the message it must report.
func refusals(t testing.TB) []struct {
	name, path, msg string
	doc             []byte
} {
	type R = struct {
		name, path, msg string
		doc             []byte
	}
	m := func(name, path, msg string, f func(m map[string]any)) R {
		return R{name, path, msg, mutate(t, f)}
	}
	raw := func(name, path, msg, doc string) R { return R{name, path, msg, []byte(doc)} }
	rs := []R{
		raw("empty", "", "not valid JSON", ""),
		raw("truncated", "", "not valid JSON", sample[:100]),
		raw("trailing data", "", "not valid JSON", sample+"{}"),
		raw("duplicate key", "", "duplicate key", strings.Replace(sample, `"version": "1.2.0",`, `"version": "1.2.0", "version": "1.3.0",`, 1)),
		raw("duplicate key in metadata", "", "duplicate key", strings.Replace(sample, `"author":`, `"notes": 1, "author":`, 1)),
		raw("invalid UTF-8", "", "not valid JSON", strings.Replace(sample, "ops <", "ops \xff<", 1)),
		raw("array", "", "want object", `[]`),
		raw("null", "", "want object", `null`),
		m("unknown member", "/extra", "unknown property", set("extra", 1)),
		m("unknown asset member", "/assets/0/owner", "unknown property", setAsset("owner", "root")),
		m("schema_version 1.1", "/schema_version", "allowed values", set("schema_version", "1.1")),
		m("schema_version number", "/schema_version", "allowed values", set("schema_version", 1.2)),
		m("asset mode 0644", "/assets/0/mode", "allowed values", func(m map[string]any) { m["schema_version"] = "1.3"; asset(m, 0)["mode"] = "0644" }),
		m("asset mode setuid", "/assets/0/mode", "allowed values", func(m map[string]any) { m["schema_version"] = "1.3"; asset(m, 0)["mode"] = "4555" }),
		m("asset mode under 1.2", "/assets/0/mode", `needs schema_version "1.3"`, setAsset("mode", "0555")),
		m("path NFC and NFD twins", "/assets/1/path", "normalised", withPaths("docs/résumé.md", "docs/résumé.md")),
		m("path NFD directory twin", "/assets/1/path", "normalised", withPaths("lib/café/a", "lib/café/b")),
		m("path NFD case twin", "/assets/1/path", "normalised", withPaths("lib/É.md", "lib/é.md")),
		m("package_id lower case", "/package_id", "pattern", set("package_id", "PKG-demo")),
		m("package_id bare prefix", "/package_id", "pattern", set("package_id", "PKG-")),
		m("package_id underscore", "/package_id", "pattern", set("package_id", "PKG_DEMO")),
		m("package_id too long", "/package_id", "at most 128", set("package_id", "PKG-"+strings.Repeat("X", 125))),
		m("version with v", "/version", "not a semantic version", set("version", "v1.2.0")),
		m("version short", "/version", "not a semantic version", set("version", "1.2")),
		m("version build", "/version", "not a semantic version", set("version", "1.2.0+build.1")),
		m("version leading zero", "/version", "not a semantic version", set("version", "01.2.0")),
		m("version pre-release leading zero", "/version", "not a semantic version", set("version", "1.2.0-01")),
		m("version empty pre-release", "/version", "not a semantic version", set("version", "1.2.0-")),
		m("version number", "/version", "want string", set("version", 1)),
		m("package_type", "/package_type", "allowed values", set("package_type", "library")),
		m("spec_id", "/spec_id", "pattern", set("spec_id", "SPEC-demo")),
		m("framework_id", "/framework_id", "pattern", set("framework_id", "FW-001")),
		m("plane_id", "/plane_id", "allowed values", set("plane_id", "ho4")),
		m("plane_id upper case", "/plane_id", "allowed values", set("plane_id", "HO3")),
		m("dependencies null", "/dependencies", "want array", set("dependencies", nil)),
		m("dependency number", "/dependencies/0", "want string", set("dependencies", []any{1})),
		m("dependency lower case", "/dependencies/0", "not a package id", set("dependencies", []any{"pkg-a"})),
		m("dependency empty constraint", "/dependencies/0", "empty constraint", set("dependencies", []any{"PKG-A@"})),
		m("dependency no operator", "/dependencies/0", "does not start with one of", set("dependencies", []any{"PKG-A@1.0.0"})),
		m("dependency short version", "/dependencies/0", "not a semantic version", set("dependencies", []any{"PKG-A@>=1.0"})),
		m("dependency v version", "/dependencies/0", "not a semantic version", set("dependencies", []any{"PKG-A@>=v1.0.0"})),
		m("dependency trailing comma", "/dependencies/0", "does not start with one of", set("dependencies", []any{"PKG-A@>=1.0.0,"})),
		m("dependency space", "/dependencies/0", "does not start with one of", set("dependencies", []any{"PKG-A@>=1.0.0, <2.0.0"})),
		m("dependency two @", "/dependencies/0", "not a semantic version", set("dependencies", []any{"PKG-A@>=1.0.0@2"})),
		m("dependency unknown operator", "/dependencies/0", "not a semantic version", set("dependencies", []any{"PKG-A@==1.0.0"})),
		m("self dependency", "/dependencies/1", "depends on itself", set("dependencies", []any{"PKG-A", "PKG-DEMO-001@^1.0.0"})),
		m("duplicate dependency", "/dependencies/2", "also named by /dependencies/0", set("dependencies", []any{"PKG-A", "PKG-B", "PKG-A@>=1.0.0"})),
		m("assets object", "/assets", "want array", set("assets", map[string]any{})),
		m("asset missing sha256", "/assets/0", `missing property "sha256"`, func(m map[string]any) { delete(asset(m, 0), "sha256") }),
		m("sha256 upper case", "/assets/0/sha256", "pattern", setAsset("sha256", "sha256:"+strings.Repeat("A", 64))),
		m("sha256 bare hex", "/assets/0/sha256", "pattern", setAsset("sha256", strings.Repeat("a", 64))),
		m("sha256 short", "/assets/0/sha256", "pattern", setAsset("sha256", "sha256:"+strings.Repeat("a", 63))),
		m("size negative", "/assets/0/size", "at least 0", setAsset("size", -1)),
		m("size fraction", "/assets/0/size", "want integer", setAsset("size", 1.5)),
		m("size string", "/assets/0/size", "want integer", setAsset("size", "12")),
		m("size 2^53", "/assets/0/size", "at most", setAsset("size", json.Number("9007199254740992"))),
		m("size huge", "/assets/0/size", "at most", setAsset("size", json.Number("1e400"))),
		m("classification", "/assets/0/classification", "allowed values", setAsset("classification", "binary")),
		m("path empty", "/assets/0/path", "at least 1", withPaths("")),
		m("path absolute", "/assets/0/path", "is absolute", withPaths("/etc/passwd")),
		m("path drive letter", "/assets/0/path", "drive letter", withPaths("C:/x")),
		m("path drive letter lower", "/assets/0/path", "drive letter", withPaths("c:x")),
		m("path backslash", "/assets/0/path", "backslash", withPaths(`lib\x.py`)),
		m("path trailing slash", "/assets/0/path", "trailing slash", withPaths("lib/")),
		m("path dot dot", "/assets/0/path", ".. element", withPaths("../x")),
		m("path inner dot dot", "/assets/0/path", ".. element", withPaths("a/../b")),
		m("path dot", "/assets/0/path", "not a clean", withPaths(".")),
		m("path dot slash", "/assets/0/path", "not a clean", withPaths("./a")),
		m("path inner dot", "/assets/0/path", "not a clean", withPaths("a/./b")),
		m("path double slash", "/assets/0/path", "not a clean", withPaths("a//b")),
		m("path control character", "/assets/0/path", "control character", withPaths("a\x01b")),
		m("path C1 control character", "/assets/0/path", "control character", withPaths("a\u0085b")),
		m("path duplicate", "/assets/1/path", "more than once", withPaths("lib/x.py", "lib/x.py")),
		m("path case fold", "/assets/1/path", `collides with "lib/x.py"`, withPaths("lib/x.py", "lib/X.PY")),
		m("path Kelvin sign fold", "/assets/1/path", "collides", withPaths("k.md", "\u212a.md")),
		m("path directory case fold", "/assets/1/path", `directory "LIB"`, withPaths("lib/a", "LIB/b")),
		m("path file then directory", "/assets/1/path", `needs "lib" to be a directory`, withPaths("lib", "lib/x.py")),
		m("path directory then file", "/assets/1/path", "is a file", withPaths("lib/x.py", "lib")),
		m("path directory then file folded", "/assets/1/path", "is a file", withPaths("lib/x.py", "Lib")),
		m("manifest as asset", "/assets/0/path", "manifest itself", withPaths("manifest.json")),
		m("manifest as asset folded", "/assets/0/path", "manifest itself", withPaths("Manifest.JSON")),
		m("manifest as directory", "/assets/0/path", `needs "manifest.json" to be a directory`, withPaths("manifest.json/x")),
		m("metadata array", "/metadata", "want object", set("metadata", []any{})),
		m("metadata null", "/metadata", "want object", set("metadata", nil)),
	}
	for _, k := range []string{"schema_version", "package_id", "version", "package_type", "spec_id", "framework_id", "plane_id", "dependencies", "assets"} {
		rs = append(rs, m("missing "+k, "", fmt.Sprintf("missing property %q", k), func(m map[string]any) { delete(m, k) }))
	}
	return rs
}

func TestParseRefuses(t *testing.T) {
	for _, tt := range refusals(t) {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.doc)
			require.Error(t, err, "accepted %s", tt.doc)
			require.Nil(t, m)
			var e *Error
			require.True(t, errors.As(err, &e), "error %T %v is not *Error", err, err)
			require.Equal(t, "MANIFEST_INVALID", e.Code())
			require.Equal(t, tt.path, e.Path, "path of %v", err)
			require.Contains(t, e.Message, tt.msg)
		})
	}
}

// Parse reports the same error for the same text, although schema problems
// are found in map order.
func TestParseErrorDeterministic(t *testing.T) {
	doc := mutate(t, func(m map[string]any) {
		m["plane_id"] = "x"
		m["package_type"] = "x"
		m["spec_id"] = "x"
		m["zzz"] = 1
	})
	_, first := Parse(doc)
	for range 20 {
		_, err := Parse(doc)
		require.Equal(t, first.Error(), err.Error())
	}
	require.Equal(t, "manifest: /package_type: value is not one of the allowed values", first.Error())
}

func TestHash(t *testing.T) {
	m, err := Parse([]byte(sample))
	require.NoError(t, err)
	got, err := m.Hash()
	require.NoError(t, err)
	sum := sha256.Sum256([]byte(sampleCanonical))
	require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), got)

	// Equal text modulo layout, member order, escapes, number spelling and
	// metadata: equal hash.
	same := []string{
		sampleCanonical,
		sampleCanonical[:len(sampleCanonical)-1] + `,"metadata":{"other":true}}`,
		strings.Replace(strings.Replace(sample, `"size": 12`, `"size": 1.2e1`, 1), `"size": 0`, `"size": -0.0`, 1),
		strings.Replace(sample, `"lib/demo.py"`, `"lib\/d\u0065mo.py"`, 1),
		`{"version":"1.2.0","spec_id":"SPEC-DEMO-001","schema_version":"1.2","plane_id":"ho3","package_type":"standard",
		  "package_id":"PKG-DEMO-001","framework_id":"FMWK-001",
		  "dependencies":["PKG-KERNEL-001@>=1.0.0,<2.0.0","PKG-LIB"],
		  "assets":[{"size":12,"sha256":"` + hashA + `","path":"lib/demo.py","classification":"library"},
		            {"size":0,"sha256":"` + hashB + `","path":"specs/SPEC-DEMO-001/manifest.json","classification":"spec"}]}`,
	}
	for i, doc := range same {
		m2, err := Parse([]byte(doc))
		require.NoError(t, err, "doc %d", i)
		h, err := m2.Hash()
		require.NoError(t, err)
		require.Equal(t, got, h, "doc %d", i)
	}
	m.Metadata = map[string]any{"changed": json.Number("1")}
	h, err := m.Hash()
	require.NoError(t, err)
	require.Equal(t, got, h, "metadata changes the hash")
	m.Metadata = nil
	h, err = m.Hash()
	require.NoError(t, err)
	require.Equal(t, got, h, "dropping metadata changes the hash")
}

// A mode is part of the hash when present; a manifest without one hashes
// as it did before modes existed (schema_version aside).
func TestHashMode(t *testing.T) {
	m, err := Parse(mutate(t, func(m map[string]any) { m["schema_version"] = "1.3" }))
	require.NoError(t, err)
	plain, err := m.Hash()
	require.NoError(t, err)
	m2, err := Parse(mutate(t, func(m map[string]any) { m["schema_version"] = "1.3"; asset(m, 0)["mode"] = "0555" }))
	require.NoError(t, err)
	require.Equal(t, "0555", m2.Assets[0].Mode)
	require.Equal(t, fs.FileMode(0o555), m2.Assets[0].FileMode())
	require.Equal(t, fs.FileMode(0o444), m2.Assets[1].FileMode())
	exec, err := m2.Hash()
	require.NoError(t, err)
	require.NotEqual(t, plain, exec)
	b, err := m2.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(b), `"classification": "library",
      "mode": "0555"`)
	m3, err := Parse(b)
	require.NoError(t, err)
	h3, err := m3.Hash()
	require.NoError(t, err)
	require.Equal(t, exec, h3)
}

func TestHashSensitive(t *testing.T) {
	base, err := Parse([]byte(sample))
	require.NoError(t, err)
	baseHash, err := base.Hash()
	require.NoError(t, err)
	changes := map[string]func(m *Manifest){
		"schema_version": func(m *Manifest) { m.SchemaVersion = "1.3" },
		"package_id":     func(m *Manifest) { m.PackageID = "PKG-DEMO-002" },
		"version":        func(m *Manifest) { m.Version = "1.2.1" },
		"package_type":   func(m *Manifest) { m.PackageType = "agent" },
		"spec_id":        func(m *Manifest) { m.SpecID = "SPEC-OTHER" },
		"framework_id":   func(m *Manifest) { m.FrameworkID = "FMWK-002" },
		"plane_id":       func(m *Manifest) { m.PlaneID = "ho2" },
		"dependency":     func(m *Manifest) { m.Dependencies[0] = "PKG-KERNEL-001@>=1.0.0" },
		"no dependency":  func(m *Manifest) { m.Dependencies = nil },
		"dep order":      func(m *Manifest) { m.Dependencies[0], m.Dependencies[1] = m.Dependencies[1], m.Dependencies[0] },
		"asset path":     func(m *Manifest) { m.Assets[0].Path = "lib/demo2.py" },
		"asset sha256":   func(m *Manifest) { m.Assets[0].SHA256 = hashB },
		"asset size":     func(m *Manifest) { m.Assets[0].Size = 13 },
		"asset class":    func(m *Manifest) { m.Assets[0].Classification = "script" },
		"asset order":    func(m *Manifest) { m.Assets[0], m.Assets[1] = m.Assets[1], m.Assets[0] },
		"asset dropped":  func(m *Manifest) { m.Assets = m.Assets[:1] },
	}
	seen := map[string]string{baseHash: "base"}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			m, err := Parse([]byte(sample))
			require.NoError(t, err)
			change(m)
			h, err := m.Hash()
			require.NoError(t, err)
			prev, dup := seen[h]
			require.False(t, dup, "%s hashes like %s", name, prev)
			seen[h] = name
		})
	}
}

func TestHashRefusesWhatJCSCannotHold(t *testing.T) {
	m, err := Parse([]byte(sample))
	require.NoError(t, err)
	m.Assets[0].Size = 1<<53 + 1
	_, err = m.Hash()
	require.Error(t, err)
	m.Assets[0].Size = 1
	m.SpecID = "\xff"
	_, err = m.Hash()
	require.Error(t, err)
}

func TestMarshal(t *testing.T) {
	m, err := Parse([]byte(sample))
	require.NoError(t, err)
	b, err := m.Marshal()
	require.NoError(t, err)
	// sample is written in Marshal's layout, except that Marshal keeps the
	// metadata number's spelling ("2.50") and sorts metadata keys.
	require.Equal(t, sample, string(b))

	bare := &Manifest{SchemaVersion: "1.2", PackageID: "PKG-X", Version: "0.1.0", PackageType: "spec",
		SpecID: "SPEC-X", FrameworkID: "FMWK-X", PlaneID: "ho1"}
	b, err = bare.Marshal()
	require.NoError(t, err)
	require.Equal(t, `{
  "schema_version": "1.2",
  "package_id": "PKG-X",
  "version": "0.1.0",
  "package_type": "spec",
  "spec_id": "SPEC-X",
  "framework_id": "FMWK-X",
  "plane_id": "ho1",
  "dependencies": [],
  "assets": []
}
`, string(b))
	back, err := Parse(b)
	require.NoError(t, err)
	require.Equal(t, bare.PackageID, back.PackageID)

	bare.Metadata = map[string]any{}
	b, err = bare.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(b), `"metadata": {}`)
	back, err = Parse(b)
	require.NoError(t, err)
	require.Equal(t, map[string]any{}, back.Metadata)

	bare.Metadata = map[string]any{"html": "<a&b>"}
	b, err = bare.Marshal()
	require.NoError(t, err)
	require.Contains(t, string(b), `"html": "<a&b>"`)
}
