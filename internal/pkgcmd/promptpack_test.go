package pkgcmd_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/prompt"
	"github.com/control-plane/cp/internal/prompt/prompttest"
)

// TestInitPromptPack: the scaffold stages (without --declare), signs and
// installs as it is, and the pack it registers loads and renders.
func TestInitPromptPack(t *testing.T) {
	root, key := prompttest.Plane(t)
	out := filepath.Join(t.TempDir(), "pack")
	res := prompttest.MustRun(t, pkgcmd.Run, "init-prompt-pack", "PRM-SUMMARIZE-001", "--spec", prompttest.Spec, "--output", out, "--root", root)
	require.Equal(t, "PKG-SUMMARIZE-001", res["package_id"])
	require.Equal(t, "prompt_pack", res["package_type"])
	require.Equal(t, prompttest.Framework, res["framework_id"], "the framework comes from the spec's registration")
	require.Len(t, res["files"], 3)

	dist := t.TempDir()
	prompttest.MustRun(t, pkgcmd.Run, "stage", "PKG-SUMMARIZE-001", "--src", out, "--out", dist, "--root", root)
	a := filepath.Join(dist, "PKG-SUMMARIZE-001.tar.gz")
	prompttest.MustRun(t, pkgcmd.Run, "sign", "--archive", a, "--key", key)
	inst := prompttest.MustRun(t, installcmd.Run, "install", "--archive", a, "--root", root)
	require.Equal(t, "PRM-SUMMARIZE-001", inst["prompt_packs"].([]any)[0].(map[string]any)["prompt_pack_id"])

	p, err := prompt.Load(root, "PRM-SUMMARIZE-001")
	require.NoError(t, err)
	require.Contains(t, p.Providers, "mock", "the scaffold's limits allow the built-in mock")
	require.Contains(t, p.Models, "mock-1")
	require.GreaterOrEqual(t, p.MaxTokens, int64(1024))
	r, err := p.Render(map[string]any{"input": "the minutes"})
	require.NoError(t, err)
	require.Contains(t, r.Text, "Request:\nthe minutes\n")

	// --package and the output's default; never over an existing tree.
	wd := t.TempDir()
	t.Chdir(wd)
	res = prompttest.MustRun(t, pkgcmd.Run, "init-prompt-pack", "PRM-X-001", "--package", "PKG-PROMPTS-009", "--spec", prompttest.Spec, "--root", root)
	require.Equal(t, "PKG-PROMPTS-009", res["package_id"])
	require.FileExists(t, filepath.Join(wd, "PRM-X-001", "governed_prompts", "PRM-X-001", "pack.json"))
	code, env := prompttest.Run(t, pkgcmd.Run, "init-prompt-pack", "PRM-X-001", "--spec", prompttest.Spec, "--root", root)
	require.Equal(t, 1, code)
	require.Equal(t, "OUTPUT_NOT_EMPTY", env["error"].(map[string]any)["code"])
	code, _ = prompttest.Run(t, pkgcmd.Run, "init-prompt-pack", "PRM-Y-001", "--root", root)
	require.Equal(t, 2, code, "--spec or --framework")
	code, _ = prompttest.Run(t, pkgcmd.Run, "init-prompt-pack", "PKG-Y-001", "--spec", prompttest.Spec, "--root", root)
	require.Equal(t, 2, code, "not a pack id")
	_, err = os.Stat(filepath.Join(wd, "PKG-Y-001"))
	require.True(t, os.IsNotExist(err))
}
