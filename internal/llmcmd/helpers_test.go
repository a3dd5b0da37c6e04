package llmcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/llm"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/internal/wocmd"
	"github.com/control-plane/cp/pkg/ledger"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testPlane is a bootstrapped plane: its root, the package signer's key
// and the work-order approver's key.
type testPlane struct {
	t              testing.TB
	dir, root      string
	opsKey, aprKey string
}

// newPlane bootstraps a plane (auth off) trusting ops for packages and
// appr for work orders, with its keys under a temporary XDG_CONFIG_HOME.
func newPlane(t testing.TB) *testPlane {
	t.Helper()
	t.Setenv("CONTROL_PLANE_TOKEN", "")
	t.Setenv("CONTROL_PLANE_AUTH", "")
	t.Setenv("CONTROL_PLANE", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	p := &testPlane{t: t, dir: dir, root: filepath.Join(dir, "plane")}
	p.tool(pkgcmd.Run, "keygen", "--name", "ops", "--out", dir)
	p.tool(pkgcmd.Run, "keygen", "--name", "appr", "--out", dir)
	p.opsKey, p.aprKey = filepath.Join(dir, "ops.key"), filepath.Join(dir, "appr.key")
	p.tool(installcmd.Run, "bootstrap", "--root", p.root, "--trust-key", filepath.Join(dir, "ops.pub"),
		"--trust-key", "work_order="+filepath.Join(dir, "appr.pub"))
	return p
}

// tool runs another tool in-process and requires success.
func (p *testPlane) tool(run cli.RunFunc, args ...string) map[string]any {
	p.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, nil, &out, &errb)
	require.Equal(p.t, 0, code, "%v\n%s%s", args, out.String(), errb.String())
	var env struct {
		Result map[string]any `json:"result"`
	}
	require.NoError(p.t, json.Unmarshal(lastLine(out.Bytes()), &env))
	return env.Result
}

// provide installs a config package whose providers.json is doc (and
// router_policy.json router, if given).
func (p *testPlane) provide(doc string, router ...string) {
	p.t.Helper()
	src := filepath.Join(p.dir, "conf")
	require.NoError(p.t, os.RemoveAll(src))
	p.tool(pkgcmd.Run, "init-config", "PKG-CONFIG-001", "--output", src)
	require.NoError(p.t, os.WriteFile(filepath.Join(src, "config", "providers.json"), []byte(doc), 0o644))
	for _, r := range router {
		require.NoError(p.t, os.WriteFile(filepath.Join(src, "config", "router_policy.json"), []byte(r), 0o644))
	}
	out := filepath.Join(p.dir, "staged")
	require.NoError(p.t, os.RemoveAll(out))
	p.tool(pkgcmd.Run, "stage", "PKG-CONFIG-001", "--src", src, "--out", out, "--root", p.root)
	a := filepath.Join(out, "PKG-CONFIG-001.tar.gz")
	p.tool(pkgcmd.Run, "sign", "--archive", a, "--key", p.opsKey)
	p.tool(installcmd.Run, "install", "--archive", a, "--root", p.root)
}

// wo creates a work order with the given extra create flags (its LLM
// budget), has bob approve it and starts a session: its id and session.
func (p *testPlane) wo(flags ...string) (id, session string) {
	p.t.Helper()
	args := append([]string{"create", "--root", p.root, "--type", "investigation", "--title", "llm work", "--paths", "lib/**"}, flags...)
	id = p.tool(wocmd.Run, args...)["wo_id"].(string)
	bob := func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		resp := wocmd.Dispatch(ctx, cli.Request{"operation": "approve", "work_order_id": id, "key": p.aprKey},
			cli.Options{Identity: cli.Identity{Subject: "bob", Auth: auth.AuthOff}, Env: &cli.Env{Root: p.root}})
		stdout.Write(resp.Stdout)
		stderr.Write(resp.Stderr)
		return resp.Exit
	}
	p.tool(bob)
	session = p.tool(wocmd.Run, "start", "--root", p.root, id)["session_id"].(string)
	return id, session
}

// call runs cp-llm in-process with args (and stdin, if not ""), as the
// process would: its exit code, stdout and stderr.
func (p *testPlane) call(stdin string, args ...string) (int, string, string) {
	return p.callAs(cli.Options{}, stdin, args...)
}

func (p *testPlane) callAs(opts cli.Options, stdin string, args ...string) (int, string, string) {
	p.t.Helper()
	var out, errb bytes.Buffer
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	args = append([]string{"--root", p.root}, args...)
	code := cli.RunWith(context.Background(), tool(), opts, args, in, &out, &errb)
	return code, out.String(), errb.String()
}

// entries returns HO2's entries of eventType.
func (p *testPlane) entries(eventType string) []ledger.Entry {
	p.t.Helper()
	s, _, err := plane.OpenLedger(llm.BudgetLedgerDir(p.root), plane.ForReading, plane.Actor{})
	require.NoError(p.t, err)
	defer s.Close()
	var es []ledger.Entry
	require.NoError(p.t, s.Find(context.Background(), ledger.Query{EventTypes: []string{eventType}}, func(e *ledger.Entry) bool {
		es = append(es, *e)
		return true
	}))
	return es
}

// initAuth turns auth on (cp-auth init by ops): the admin token.
func (p *testPlane) initAuth() string {
	p.t.Helper()
	resp := authcmd.Dispatch(context.Background(), cli.Request{"operation": "init", "sub": "ops"}, cli.Options{Env: &cli.Env{Root: p.root}})
	require.Equal(p.t, 0, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
	env, err := resp.Envelope()
	require.NoError(p.t, err)
	return env.Result.(map[string]any)["token"].(string)
}

// mint mints a token with the admin token.
func (p *testPlane) mint(admin, sub, role string, tiers []any, wo, ses string) string {
	p.t.Helper()
	req := cli.Request{"operation": "token", "sub": sub, "role": role, "tiers": tiers, "ttl": "1h"}
	if wo != "" {
		req["wo"], req["session"] = wo, ses
	}
	resp := authcmd.Dispatch(context.Background(), req, cli.Options{Env: &cli.Env{Root: p.root, Token: admin}})
	require.Equal(p.t, 0, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
	env, err := resp.Envelope()
	require.NoError(p.t, err)
	return env.Result.(map[string]any)["token"].(string)
}

// envelope decodes stdout's last line.
func envelope(t *testing.T, out string) map[string]any {
	t.Helper()
	var env map[string]any
	d := json.NewDecoder(bytes.NewReader(lastLine([]byte(out))))
	d.UseNumber()
	require.NoError(t, d.Decode(&env), "stdout: %s", out)
	return env
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func errCode(t *testing.T, out string) string {
	t.Helper()
	e, _ := envelope(t, out)["error"].(map[string]any)
	require.NotNil(t, e, "no error in %s", out)
	return e["code"].(string)
}

func result(t *testing.T, out string) map[string]any {
	t.Helper()
	env := envelope(t, out)
	require.Equal(t, "ok", env["status"], "%s", out)
	return env["result"].(map[string]any)
}

func today() string { return time.Now().UTC().Format("20060102") }
