package tracecmd

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRun holds cp-trace's verbs to their contract in-process on a fresh
// plane: the kernel's inventory in every tier, a kernel file's provenance,
// explain's refusals, and the usage errors.
func TestRun(t *testing.T) {
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	const p = "$DIR/plane"
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "a plane", Run: installcmd.Run, Args: []string{"bootstrap", "--root", p}},
		{Name: "inventory", Args: []string{"--root", p}, Stdout: []string{`"tiers":[{"tier":"ho3","packages":[{"package_id":"PKG-KERNEL-001"`, `"signature":"waived"`}},
		{Name: "inventory text", Args: []string{"inventory", "--root", p, "--format", "text", "--plane", "ho2"}, Stdout: []string{"ho2   PKG-KERNEL-001"}},
		{Name: "a kernel file", Args: []string{"file", "--root", p, "config/governed_roots.json"},
			Stdout: []string{`"state":"intact"`, `"package_id":"PKG-KERNEL-001"`, `"action":"install"`}},
		{Name: "a kernel file on stdin", Args: []string{"--root", p}, Stdin: `{"operation":"file","path":"planes/ho2/config/governed_roots.json"}`,
			Stdout: []string{`"tier":"ho2"`}},
		{Name: "not owned", Args: []string{"file", "--root", p, "tier.json"}, Exit: 2, Stderr: []string{"tier.json is not owned by any installed package"}},
		{Name: "escape", Args: []string{"file", "--root", p, "../plane/tier.json"}, Exit: 2},
		{Name: "explain the kernel", Args: []string{"explain", "--root", p, "PKG-KERNEL-001"}, Stdout: []string{`"status":"installed"`, `"tiers":["ho1","ho2","ho3"]`}},
		{Name: "explain a framework", Args: []string{"explain", "--root", p, "FMWK-KERNEL-001"}, Stdout: []string{`"specs":["SPEC-KERNEL-001"]`}},
		{Name: "no prompt packs", Args: []string{"explain", "--root", p, "PRM-ANY-001"}, Exit: 2, Stderr: []string{"no prompt-pack registry yet"}},
		{Name: "unknown id kind", Args: []string{"explain", "--root", p, "XYZ-1"}, Exit: 2},
		{Name: "summary", Args: []string{"compliance", "summary", "--root", p}, Stdout: []string{`"frameworks":{"active":1,"total":1}`}},
		{Name: "troubleshoot a code", Args: []string{"compliance", "troubleshoot", "--error", "file_tampered"},
			Stdout: []string{`"query":"FILE_TAMPERED"`, `"code":"FILE_TAMPERED","exit":1`, `"cp-trace file"`}},
		{Name: "troubleshoot a gate's codes", Args: []string{"compliance", "troubleshoot", "--error", "G2"}, Stdout: []string{`"code":"WO_CLOSED"`}},
		{Name: "troubleshoot an unknown code", Args: []string{"compliance", "troubleshoot", "--error", "NOPE"}, Exit: 2, Stdout: []string{`"code":"ID_NOT_FOUND"`}},
	})
}

// TestAgentContextDeterministic: two runs over the same plane give the
// same result bytes, and nothing in it reads the clock.
func TestAgentContextDeterministic(t *testing.T) {
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	root := filepath.Join(dir, "plane")
	var out, errb bytes.Buffer
	require.Equal(t, 0, installcmd.Run(context.Background(), []string{"bootstrap", "--root", root}, nil, &out, &errb), errb.String())
	result := func() []byte {
		var out, errb bytes.Buffer
		require.Equal(t, 0, Run(context.Background(), []string{"agent-context", "--root", root}, nil, &out, &errb), errb.String())
		var env struct {
			Result json.RawMessage `json:"result"`
		}
		require.NoError(t, json.Unmarshal(out.Bytes(), &env))
		return env.Result
	}
	a, b := result(), result()
	require.Equal(t, string(a), string(b))
	require.NotContains(t, string(a), "timestamp")
	require.Contains(t, string(a), `"format":"control-plane/agent-context/v1"`)
	require.Contains(t, string(a), `"auth":"off"`)
}
