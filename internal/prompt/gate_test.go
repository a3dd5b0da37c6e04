package prompt_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/gate"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/prompt/prompttest"
	"github.com/control-plane/cp/internal/registry"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
)

// handArchive writes an unsigned archive of a package of type typ holding
// files, built by hand so that no stage check runs: what install's own
// preflight must refuse.
func handArchive(t *testing.T, id, typ string, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, PackageID: id, Version: "1.0.0", PackageType: typ,
		SpecID: prompttest.Spec, FrameworkID: prompttest.Framework, PlaneID: "ho3", Dependencies: []string{}}
	paths := []string{manifest.FileName}
	for p, b := range files {
		paths = append(paths, p)
		full := filepath.Join(src, filepath.FromSlash(p))
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(b), 0o644))
	}
	slices.Sort(paths[1:])
	for _, p := range paths[1:] {
		b := files[p]
		m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: plane.SHA256([]byte(b)), Size: int64(len(b)), Classification: "prompt"})
	}
	mb, err := m.Marshal()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(src, manifest.FileName), mb, 0o644))
	var buf bytes.Buffer
	require.NoError(t, archive.Write(&buf, src, paths))
	a := filepath.Join(t.TempDir(), id+".tar.gz")
	require.NoError(t, os.WriteFile(a, buf.Bytes(), 0o644))
	return a
}

// TestGatesRefuse: a prompt_pack package whose packs break a rule, or a
// pack outside a prompt_pack package, is refused by stage's preflight
// (a source tree) and by install's (an archive made by hand), before
// anything is written, with PROMPT_PACK_INVALID naming the file.
func TestGatesRefuse(t *testing.T) {
	const d = "governed_prompts/PRM-GREET-001/"
	pack := prompttest.PackJSON("PRM-GREET-001", "1.0.0", greetVars)
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{d + "pack.json": pack, d + "template.txt": "Hello {{.name}}.\n"}
		for k, v := range extra {
			if v == "" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, typ string
		files     map[string]string
		path, msg string
	}{
		{"no pack.json", "prompt_pack", with(map[string]string{d + "pack.json": ""}), d + "pack.json", "has no pack.json"},
		{"pack.json not JSON", "prompt_pack", with(map[string]string{d + "pack.json": "{"}), d + "pack.json", "not JSON"},
		{"pack.json without max_tokens", "prompt_pack", with(map[string]string{d + "pack.json": `{"prompt_pack_id":"PRM-GREET-001","version":"1.0.0","template":"template.txt","variables":{},"providers":["mock"],"models":["m"]}`}), d + "pack.json", "max_tokens"},
		{"pack.json with an unknown field", "prompt_pack", with(map[string]string{d + "pack.json": `{"prompt_pack_id":"PRM-GREET-001","version":"1.0.0","template":"template.txt","variables":{},"providers":["mock"],"models":["m"],"max_tokens":5,"system":"x"}`}), d + "pack.json", "system"},
		{"a version that is not semver", "prompt_pack", with(map[string]string{d + "pack.json": prompttest.PackJSON("PRM-GREET-001", "v1", greetVars)}), d + "pack.json", "/version"},
		{"a template it does not ship", "prompt_pack", with(map[string]string{d + "template.txt": "", d + "other.txt": "x"}), d + "pack.json", "does not ship"},
		{"a template that does not parse", "prompt_pack", with(map[string]string{d + "template.txt": "Hello {{.name"}), d + "template.txt", "does not parse"},
		{"a template that is not text", "prompt_pack", with(map[string]string{d + "template.txt": "\xff\xfe"}), d + "template.txt", "not UTF-8"},
		{"a directory named otherwise", "prompt_pack", map[string]string{"governed_prompts/PRM-OTHER-001/pack.json": pack, "governed_prompts/PRM-OTHER-001/template.txt": "x"}, "governed_prompts/PRM-OTHER-001/pack.json", "named after its id"},
		{"a directory that is not an id", "prompt_pack", map[string]string{"governed_prompts/PRM-greet/pack.json": pack, "governed_prompts/PRM-greet/template.txt": "x"}, "governed_prompts/PRM-greet/pack.json", "not a prompt pack directory"},
		{"a file outside any pack", "prompt_pack", with(map[string]string{"governed_prompts/README.md": "x"}), "governed_prompts/README.md", "holds only prompt packs"},
		{"a nested file", "prompt_pack", with(map[string]string{d + "sub/x.txt": "x"}), d + "sub/x.txt", "directly"},
		{"an unsupported variables keyword", "prompt_pack", with(map[string]string{d + "pack.json": prompttest.PackJSON("PRM-GREET-001", "1.0.0", `{"type":"object","uniqueItems":true}`)}), d + "pack.json", "validator enforces"},
		{"a $ref out of the variables schema", "prompt_pack", with(map[string]string{d + "pack.json": prompttest.PackJSON("PRM-GREET-001", "1.0.0", `{"$ref":"https://control-plane.dev/schemas/tier.schema.json"}`)}), d + "pack.json", "validator enforces"},
		{"the template named pack.json", "prompt_pack", with(map[string]string{d + "pack.json": `{"prompt_pack_id":"PRM-GREET-001","version":"1.0.0","template":"pack.json","variables":{},"providers":["mock"],"models":["m"],"max_tokens":5}`}), d + "pack.json", "cannot be pack.json"},
		{"a provider listed twice", "prompt_pack", with(map[string]string{d + "pack.json": `{"prompt_pack_id":"PRM-GREET-001","version":"1.0.0","template":"template.txt","variables":{},"providers":["mock","mock"],"models":["m"],"max_tokens":5}`}), d + "pack.json", "listed twice"},
		{"a standard package holding a pack", "standard", with(nil), d + "pack.json", "only a package of type prompt_pack"},
		{"an agent package holding a pack, spelled otherwise", "agent", map[string]string{"governed_prompts/prm-greet-001/pack.json": pack}, "governed_prompts/prm-greet-001/pack.json", "only a package of type prompt_pack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, key := prompttest.Plane(t)
			src := prompttest.SourceOfType(t, "PKG-BAD-001", "1.0.0", tc.typ, tc.files)
			_, exit, env := prompttest.Stage(t, root, key, "PKG-BAD-001", src)
			require.Equal(t, 1, exit, "%v", env)
			e := env["error"].(map[string]any)
			require.Equal(t, "PREFLIGHT_FAILED", e["code"])
			require.Contains(t, e["details"].(map[string]any)["codes"], prompt.CodeInvalid, "%v", e)

			a := handArchive(t, "PKG-BAD-001", tc.typ, tc.files)
			rep, err := gate.Preflight(context.Background(), root, gate.Source{Archive: a}, gate.Options{AllowUnsigned: true})
			require.NoError(t, err)
			require.False(t, rep.Passed)
			i := slices.IndexFunc(rep.Results[0].Errors, func(f gate.Finding) bool { return f.Code == prompt.CodeInvalid })
			require.GreaterOrEqual(t, i, 0, "%+v", rep.Results[0])
			f := rep.Results[0].Errors[i]
			require.Equal(t, tc.path, f.Path, "%+v", f)
			require.Contains(t, f.Message, tc.msg)

			_, err = install.Install(context.Background(), root, install.Options{Archive: a, Actor: plane.Actor{Name: "tester"}, Gate: gate.Options{AllowUnsigned: true}})
			require.Equal(t, prompt.CodeInvalid, code(err), "%v", err)
			require.NoDirExists(t, filepath.Join(root, "governed_prompts", "PRM-GREET-001"))
			require.Empty(t, promptRows(t, root))
		})
	}
}

// TestPackIDOwned: a pack id belongs to one package. Another package
// shipping it is refused (its files are owned, and the registry names its
// owner), even when only prompts_registry.csv says so.
func TestPackIDOwned(t *testing.T) {
	root, key := prompttest.Plane(t)
	prompttest.Publish(t, root, key, "PKG-PROMPTS-001", prompttest.Source(t, "PKG-PROMPTS-001", "1.0.0", greetFiles("1.0.0", "Hello {{.name}}.\n")))
	_, exit, env := prompttest.Stage(t, root, key, "PKG-THIEF-001", prompttest.Source(t, "PKG-THIEF-001", "1.0.0", greetFiles("9.0.0", "Obey {{.name}}.\n")))
	require.Equal(t, 1, exit)
	require.Contains(t, env["error"].(map[string]any)["details"].(map[string]any)["codes"], "OWNERSHIP_CONFLICT")

	// A row with no files behind it (a registry edited by hand) holds the id too.
	require.NoError(t, registry.Update(context.Background(), root, registry.Prompts, func(rows []registry.Row) ([]registry.Row, error) {
		return append(rows, registry.Row{"prompt_pack_id": "PRM-GHOST-001", "package_id": "PKG-OTHER-001", "path": "governed_prompts/PRM-GHOST-001",
			"sha256": rows[0]["sha256"], "version": "1.0.0", "status": "active", "registered_at": rows[0]["registered_at"]}), nil
	}))
	files := map[string]string{
		"governed_prompts/PRM-GHOST-001/pack.json":    prompttest.PackJSON("PRM-GHOST-001", "1.0.0", greetVars),
		"governed_prompts/PRM-GHOST-001/template.txt": "Boo {{.name}}.\n",
	}
	a := handArchive(t, "PKG-THIEF-002", "prompt_pack", files)
	_, err := install.Install(context.Background(), root, install.Options{Archive: a, Actor: plane.Actor{Name: "tester"}, Gate: gate.Options{AllowUnsigned: true}})
	require.Equal(t, "OWNERSHIP_CONFLICT", code(err), "%v", err)
	require.Contains(t, err.Error(), "registered to package PKG-OTHER-001")
}
