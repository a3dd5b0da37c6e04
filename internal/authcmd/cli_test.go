package authcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/clitest"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
)

// TestRun holds cp-auth's verbs to their contract in-process, as the
// plane's owner with CONTROL_PLANE_AUTH=off once auth is initialized.
func TestRun(t *testing.T) {
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "off")
	clitest.RunCases(t, Run, []clitest.Case{
		{Name: "a plane", Run: installcmd.Run, Args: []string{"bootstrap", "--root", "$DIR/plane"}},
		{Name: "whoami before init: auth off", Args: []string{"whoami", "--root", "$DIR/plane"},
			Stdout: []string{`"auth":"off"`, `cp-auth init never ran`}},
		{Name: "init", Args: []string{"init", "--root", "$DIR/plane", "--sub", "ops"},
			Stdout: []string{`"status":"ok"`, `"role":"admin"`, `"sub":"ops"`, `"tiers":["ho3","ho2","ho1"]`, `"token":"eyJ`, `auth.key"`}},
		{Name: "init twice is refused", Args: []string{"init", "--root", "$DIR/plane"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"AUTH_INITIALIZED"`}, Stderr: []string{"already trusts a key for auth"}},
		{Name: "a worker token", Args: []string{"token", "--root", "$DIR/plane", "--sub", "w1", "--role", "worker", "--tiers", "ho1", "--wo", "WO-1", "--session", "SES-20261206-00000001", "--ttl", "1h"},
			Stdout: []string{`"token":"eyJ`, `"wo":"WO-1"`, `"session":"SES-20261206-00000001"`}},
		{Name: "the token alone in text", Args: []string{"token", "--root", "$DIR/plane", "--sub", "r1", "--role", "reader", "--tiers", "ho3", "--format", "text"},
			Stdout: []string{"eyJ"}},
		{Name: "a worker without a work order", Args: []string{"token", "--root", "$DIR/plane", "--sub", "w2", "--role", "worker", "--tiers", "ho1"},
			Exit: cli.ExitUsage, Stderr: []string{"must name its work order"}},
		{Name: "an unknown role", Args: []string{"token", "--root", "$DIR/plane", "--sub", "x", "--role", "root", "--tiers", "ho1"},
			Exit: cli.ExitUsage, Stderr: []string{"--role: value is not one of the allowed values"}},
		{Name: "a bad ttl", Args: []string{"token", "--root", "$DIR/plane", "--sub", "x", "--role", "reader", "--tiers", "ho1", "--ttl", "-1h"},
			Exit: cli.ExitUsage, Stderr: []string{"positive duration"}},
		{Name: "a key the plane does not trust", Files: map[string]string{"other.key": otherKey},
			Args: []string{"token", "--root", "$DIR/plane", "--sub", "x", "--role", "reader", "--tiers", "ho1", "--key", "$DIR/other.key"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"AUTH_KEY_UNAVAILABLE"`}},
		{Name: "revoke by subject", Args: []string{"revoke", "--root", "$DIR/plane", "--sub", "w1"},
			Stdout: []string{`"revoked":{"sub":"w1"}`, `"ledger_entry_id"`}},
		{Name: "revoke names exactly one", Args: []string{"revoke", "--root", "$DIR/plane", "--sub", "w1", "--role", "reader"},
			Exit: cli.ExitUsage, Stderr: []string{"exactly one"}},
		{Name: "the ledger holds what was issued and revoked, never a token", Run: ledgercmd.Run,
			Args:   []string{"show", "--root", "$DIR/plane", "--where", `.event_type | startswith("TOKEN_")`},
			Stdout: []string{`"event_type":"TOKEN_ISSUED"`, `"event_type":"TOKEN_REVOKED"`, `"jti":"tok-`}},
		{Name: "check allows without policies", Args: []string{"check", "--root", "$DIR/plane", "--action", "shell", "--resource", "ls"},
			Stdout: []string{`"decision":"allow"`}},
		{Name: "check denies under a forbid", Files: map[string]string{"plane/config/policy.cedar": `@id("no-curl") forbid (principal, action == Action::"shell", resource == Resource::"curl");`},
			Args: []string{"check", "--root", "$DIR/plane", "--action", "shell", "--resource", "curl", "--context", `{"cwd":"/tmp"}`},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"TOOL_DENIED"`, `"decision":"deny"`, `"policy":"no-curl (line 1)"`}, Stderr: []string{"no-curl"}},
		{Name: "check under a policy that does not parse", Files: map[string]string{"plane/config/policy.cedar": `forbid (`},
			Args: []string{"check", "--root", "$DIR/plane", "--action", "file.read", "--resource", "/etc/hosts"},
			Exit: cli.ExitDenied, Stdout: []string{`"code":"TOOL_DENIED"`}, Stderr: []string{"does not parse"}},
		{Name: "TOOL_DECISION recorded", Run: ledgercmd.Run, Args: []string{"show", "--root", "$DIR/plane", "--event-type", "TOOL_DECISION"},
			Stdout: []string{`"decision":"ALLOWED"`, `"decision":"DENIED"`, `"resource":"curl"`}},
	})
}

const otherKey = "PRIVATE+KEY+other-auth+4043f431+AdlhW3iRvAGiC1NSgv/YVSK72o/eSs9/QwHvrCvvmwxe\n"

func run(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	var env map[string]any
	if out.Len() > 0 {
		require.NoError(t, json.Unmarshal(out.Bytes(), &env), out.String())
	}
	return code, env, errb.String()
}

// TestWhoamiAndCheckWithTokens: whoami and check read the caller's token.
func TestWhoamiAndCheckWithTokens(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("CONTROL_PLANE", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	root := filepath.Join(dir, "plane")
	var sink bytes.Buffer
	require.Equal(t, 0, installcmd.Run(context.Background(), []string{"bootstrap", "--root", root}, strings.NewReader(""), &sink, &sink), sink.String())
	code, env, stderr := run(t, "init", "--root", root)
	require.Equal(t, 0, code, stderr)
	admin := env["result"].(map[string]any)["token"].(string) // init's first admin token
	t.Setenv("CONTROL_PLANE_TOKEN", admin)
	code, env, stderr = run(t, "token", "--root", root, "--sub", "aud1", "--role", "auditor", "--tiers", "ho2")
	require.Equal(t, 0, code, stderr)
	tok := env["result"].(map[string]any)["token"].(string)
	file := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(file, []byte(tok), 0o600))
	t.Setenv("CONTROL_PLANE_TOKEN", file)

	code, env, stderr = run(t, "whoami", "--root", root)
	require.Equal(t, 0, code, stderr)
	res := env["result"].(map[string]any)
	require.Equal(t, "aud1", res["subject"])
	require.Equal(t, "token", res["auth"])
	require.Contains(t, res["allows"], map[string]any{"action": "read", "tiers": []any{"ho3", "ho2"}})
	require.Contains(t, res["allows"], map[string]any{"action": "append", "tiers": []any{}})

	code, env, stderr = run(t, "check", "--root", root, "--action", "shell", "--resource", "rm -rf /")
	require.Equal(t, cli.ExitDenied, code)
	require.Contains(t, stderr, "role auditor may only read")
	require.Equal(t, "TOOL_DENIED", env["error"].(map[string]any)["code"])
	require.NotContains(t, stderr, tok)
	code, _, stderr = run(t, "check", "--root", root, "--action", "file.read", "--resource", "/etc/hosts")
	require.Equal(t, 0, code, stderr)

	// Revoked: whoami refuses it from then on.
	t.Setenv("CONTROL_PLANE_TOKEN", admin)
	code, _, stderr = run(t, "revoke", "--root", root, "--role", "auditor")
	require.Equal(t, 0, code, stderr)
	t.Setenv("CONTROL_PLANE_TOKEN", tok)
	code, env, _ = run(t, "whoami", "--root", root)
	require.Equal(t, cli.ExitDenied, code)
	require.Equal(t, "AUTH_REVOKED", env["error"].(map[string]any)["code"])
}
