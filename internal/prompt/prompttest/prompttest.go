// Package prompttest builds planes with prompt packs installed for tests:
// a plane whose spec allows governed_prompts/**, package source trees of
// type prompt_pack, and the stage | sign | install that publishes them,
// run in-process through the tools' Run.
package prompttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/pkg/keys"
)

// Spec and Framework are the ids Plane registers; the spec's assets are
// governed_prompts/**.
const (
	Framework = "FMWK-PROMPTS-001"
	Spec      = "SPEC-PROMPTS-001"
)

type runFunc func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Run runs tool in-process with args and returns its exit code and its
// envelope, decoded.
func Run(t testing.TB, tool runFunc, args ...string) (int, map[string]any) {
	t.Helper()
	var out, errb bytes.Buffer
	code := tool(context.Background(), args, nil, &out, &errb)
	var env map[string]any
	if err := json.Unmarshal(out.Bytes(), &env); err != nil {
		t.Fatalf("%v: exit %d, stdout not one JSON envelope: %v\nstdout: %s\nstderr: %s", args, code, err, out.String(), errb.String())
	}
	return code, env
}

// MustRun is Run that fails the test unless the tool exits 0, and
// returns the envelope's result.
func MustRun(t testing.TB, tool runFunc, args ...string) map[string]any {
	t.Helper()
	code, env := Run(t, tool, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %v", args, code, env["error"])
	}
	r, _ := env["result"].(map[string]any)
	return r
}

// Plane bootstraps a plane trusting a fresh key, registers Framework and
// Spec, and returns the plane's root and the signer key's path.
func Plane(t testing.TB) (root, key string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("CONTROL_PLANE", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	skey, vkey, err := keys.Generate("ops")
	if err != nil {
		t.Fatal(err)
	}
	key, pub := filepath.Join(dir, "ops.key"), filepath.Join(dir, "ops.pub")
	write(t, key, skey+"\n")
	write(t, pub, vkey+"\n")
	root = filepath.Join(dir, "plane")
	MustRun(t, installcmd.Run, "bootstrap", "--root", root, "--trust-key", pub)
	fw := filepath.Join(dir, "fw.md")
	write(t, fw, "---\nframework_id: "+Framework+"\ntitle: Governed prompts\nversion: 1.0.0\n---\n- MUST register every prompt pack with its hash.\n")
	write(t, filepath.Join(dir, "spec", "manifest.json"),
		`{"spec_id":"`+Spec+`","framework_id":"`+Framework+`","title":"Prompt packs","assets":["governed_prompts/**"]}`)
	MustRun(t, pkgcmd.Run, "register-framework", Framework, "--src", fw, "--root", root)
	MustRun(t, pkgcmd.Run, "register-spec", Spec, "--src", filepath.Join(dir, "spec"), "--root", root)
	return root, key
}

// PackJSON returns a pack.json for id at version with template
// "template.txt", variables schema vars (a JSON object), provider mock and
// model mock-1, max_tokens 512.
func PackJSON(id, version, vars string) string {
	return `{"prompt_pack_id":"` + id + `","version":"` + version + `","template":"template.txt","variables":` + vars +
		`,"providers":["mock"],"models":["mock-1"],"max_tokens":512,"description":"a test pack"}`
}

// Source writes a package source tree of type prompt_pack for pkgID at
// version into a new directory and returns it. files maps slash paths
// under the tree (governed_prompts/PRM-X/pack.json, ...) to contents; the
// manifest declares none of them (stage with --declare, as Publish does).
func Source(t testing.TB, pkgID, version string, files map[string]string) string {
	t.Helper()
	return SourceOfType(t, pkgID, version, "prompt_pack", files)
}

// SourceOfType is Source for a package of type typ.
func SourceOfType(t testing.TB, pkgID, version, typ string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	m := map[string]any{"schema_version": "1.2", "package_id": pkgID, "version": version, "package_type": typ,
		"spec_id": Spec, "framework_id": Framework, "plane_id": "ho3", "dependencies": []any{}, "assets": []any{}}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "manifest.json"), string(b)+"\n")
	for p, c := range files {
		write(t, filepath.Join(dir, filepath.FromSlash(p)), c)
	}
	return dir
}

// Stage stages (--declare) and signs the tree at src and returns the
// archive's path, or the exit code and envelope of the step that failed.
func Stage(t testing.TB, root, key, pkgID, src string) (archive string, code int, env map[string]any) {
	t.Helper()
	out := t.TempDir()
	if code, env := Run(t, pkgcmd.Run, "stage", pkgID, "--src", src, "--declare", "--out", out, "--root", root); code != 0 {
		return "", code, env
	}
	a := filepath.Join(out, pkgID+".tar.gz")
	MustRun(t, pkgcmd.Run, "sign", "--archive", a, "--key", key)
	return a, 0, nil
}

// Publish stages, signs and installs the tree at src, failing the test
// unless every step succeeds, and returns the install's result.
func Publish(t testing.TB, root, key, pkgID, src string) map[string]any {
	t.Helper()
	a, code, env := Stage(t, root, key, pkgID, src)
	if code != 0 {
		t.Fatalf("stage %s: exit %d: %v", pkgID, code, env["error"])
	}
	return MustRun(t, installcmd.Run, "install", "--archive", a, "--root", root)
}

func write(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
