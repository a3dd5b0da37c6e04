package mcpcmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/ledger"
)

func TestMain(m *testing.M) { testenv.Main(cleanup{m}) }

// cleanup runs the tests, then removes the binary they built, if any.
type cleanup struct{ m *testing.M }

func (c cleanup) Run() int {
	code := c.m.Run()
	// Asked only when a test built it: binary() itself would build it.
	if binaryBuilt.Load() {
		if bin, err := binary(); err == nil {
			os.RemoveAll(filepath.Dir(bin))
		}
	}
	return code
}

// testPlane is a bootstrapped plane, auth initialized when admin is set.
type testPlane struct {
	root  string // real
	admin string
}

// newPlane bootstraps a plane in a temporary directory; withAuth runs
// cp-auth init on it (its keys under a temporary XDG_CONFIG_HOME).
func newPlane(t *testing.T, withAuth bool) testPlane {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "config"))
	dir, err := filepath.EvalSymlinks(t.TempDir())
	require.NoError(t, err)
	root := newPlaneAt(t, filepath.Join(dir, "plane"))
	p := testPlane{root: root}
	if withAuth {
		resp := authcmd.Dispatch(context.Background(), cli.Request{"operation": "init", "sub": "ops"}, cli.Options{Env: &cli.Env{Root: root}})
		require.Equal(t, cli.ExitOK, resp.Exit, "%s%s", resp.Stdout, resp.Stderr)
		env, err := resp.Envelope()
		require.NoError(t, err)
		p.admin = env.Result.(map[string]any)["token"].(string)
	}
	return p
}

// newPlaneAt bootstraps a plane at root (whose parent is real).
func newPlaneAt(t testing.TB, root string) string {
	t.Helper()
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "ops"}})
	require.NoError(t, err)
	return root
}

// mint mints a token through cp-auth token with the admin token.
func (p testPlane) mint(t *testing.T, sub, role string, tiers []any, wo, ses string) string {
	t.Helper()
	req := cli.Request{"operation": "token", "sub": sub, "role": role, "tiers": tiers, "ttl": "1h"}
	if wo != "" {
		req["wo"], req["session"] = wo, ses
	}
	resp := authcmd.Dispatch(context.Background(), req, cli.Options{Env: &cli.Env{Root: p.root, Token: p.admin}})
	require.Equal(t, cli.ExitOK, resp.Exit, "%s%s", resp.Stdout, resp.Stderr)
	env, err := resp.Envelope()
	require.NoError(t, err)
	return env.Result.(map[string]any)["token"].(string)
}

// client serves the plane over in-memory transports with token as the
// server's CONTROL_PLANE_TOKEN and returns the SDK client's session.
func (p testPlane) client(t *testing.T, token string) *mcp.ClientSession {
	t.Helper()
	s, err := NewServer(Config{Root: p.root, Env: cli.Env{Token: token}, OSUser: "tester"})
	require.NoError(t, err)
	return connect(t, s)
}

func connect(t testing.TB, s *Server) *mcp.ClientSession {
	ctx := context.Background()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := s.MCP().Connect(ctx, st, nil)
	require.NoError(t, err)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)
	t.Cleanup(func() { cs.Close(); ss.Wait() })
	return cs
}

// call calls a tool and returns the result and its envelope.
func call(t *testing.T, cs *mcp.ClientSession, name string, args any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	b, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	var env map[string]any
	require.NoError(t, json.Unmarshal(b, &env), "%s", b)
	require.Len(t, res.Content, 1)
	require.JSONEq(t, string(b), res.Content[0].(*mcp.TextContent).Text, "text content is the envelope")
	return res, env
}

func errCode(env map[string]any) string {
	e, _ := env["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// denials returns the AUTHZ_DENIED entries of HO3's ledger.
func denials(t *testing.T, root string) []*ledger.Entry {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var out []*ledger.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"event_type":"AUTHZ_DENIED"`)) {
			e, err := ledger.ParseLine(sc.Bytes())
			require.NoError(t, err)
			out = append(out, e)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestToolSchemas lists the tools with the SDK's client and holds each
// input schema to its verb's request schema: the same document where it
// has no $ref, the same properties, required fields and
// additionalProperties where it had, and no $ref left anywhere; and each
// tool's annotations to its action.
func TestToolSchemas(t *testing.T) {
	p := newPlane(t, false)
	cs := p.client(t, "")
	res, err := cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	ts, err := tools()
	require.NoError(t, err)
	require.Len(t, res.Tools, len(ts))
	byName := map[string]*served{}
	for _, s := range ts {
		byName[s.name] = s
	}
	for _, tool := range res.Tools {
		s := byName[tool.Name]
		require.NotNil(t, s, tool.Name)
		got, err := json.Marshal(tool.InputSchema)
		require.NoError(t, err)
		require.NotContains(t, string(got), `"$ref"`, tool.Name)
		raw, err := os.ReadFile(filepath.Join("../../schemas", s.verb.Schema))
		require.NoError(t, err)
		var file map[string]any
		require.NoError(t, json.Unmarshal(raw, &file))
		if !bytes.Contains(raw, []byte(`"$ref"`)) {
			require.JSONEq(t, string(raw), string(got), "%s: the verb's request schema, as it is", tool.Name)
		} else {
			var g map[string]any
			require.NoError(t, json.Unmarshal(got, &g))
			for _, k := range []string{"$id", "type", "required", "additionalProperties"} {
				require.Equal(t, file[k], g[k], "%s: %s", tool.Name, k)
			}
			fp, gp := file["properties"].(map[string]any), g["properties"].(map[string]any)
			require.Len(t, gp, len(fp), tool.Name)
			for k := range fp {
				require.Contains(t, gp, k, tool.Name)
			}
		}
		a := tool.Annotations
		require.NotNil(t, a, tool.Name)
		require.Equal(t, s.verb.Action == cli.ActionRead && s.verb.ActionOf == nil, a.ReadOnlyHint, tool.Name)
		if !a.ReadOnlyHint {
			require.NotNil(t, a.DestructiveHint, tool.Name)
			want := map[cli.Action]bool{cli.ActionInstall: true, cli.ActionRollback: true, cli.ActionTrust: true, cli.ActionRevoke: true, cli.ActionMigrate: true}[s.verb.Action]
			require.Equal(t, want, *a.DestructiveHint, tool.Name)
		}
	}
	// A resolved schema validates what the verb's validates: a turn's
	// declared input reaches through two files' $refs.
	turn := byName["cp_wo_turn"].schema
	di := turn["properties"].(map[string]any)["declared_inputs"].(map[string]any)
	b, _ := json.Marshal(di)
	require.Contains(t, string(b), `"sha256"`)
	require.Contains(t, string(b), `^sha256:[0-9a-f]{64}$`)
}

// TestToolsMatchCapabilities holds the tool list to the binaries'
// capabilities.json: every operation is a tool, but the host-level ones.
func TestToolsMatchCapabilities(t *testing.T) {
	docs, err := filepath.Glob("../../cmd/*/capabilities.json")
	require.NoError(t, err)
	want := map[string]bool{}
	hostSeen := map[string]bool{}
	for _, d := range docs {
		b, err := os.ReadFile(d)
		require.NoError(t, err)
		var c struct {
			Name       string `json:"name"`
			Operations []struct {
				Operation string `json:"operation"`
			} `json:"operations"`
		}
		require.NoError(t, json.Unmarshal(b, &c))
		if c.Name == "cp-mcp" {
			continue
		}
		served := false
		for _, b := range Binaries {
			served = served || b.Tool().Name == c.Name
		}
		require.True(t, served, "%s is not in Binaries: add its line", c.Name)
		for _, op := range c.Operations {
			if _, host := HostLevel[c.Name+" "+op.Operation]; host {
				hostSeen[c.Name+" "+op.Operation] = true
				continue
			}
			want[ToolName(c.Name, op.Operation)] = true
		}
	}
	ts, err := tools()
	require.NoError(t, err)
	got := map[string]bool{}
	for _, s := range ts {
		got[s.name] = true
		require.Regexp(t, `^cp_[a-z]+_[a-z0-9_]+$`, s.name)
	}
	require.Equal(t, want, got)
	for _, v := range []string{"cp-install bootstrap", "cp-pkg keygen", "cp-auth init", "cp-auth token", "cp-ledger import"} {
		require.True(t, hostSeen[v], "%s is a host-level verb, not a tool", v)
	}
}

// TestCalls calls tools through the SDK's client on a plane with auth: a
// read (cp_ledger_verify, cp_trace_inventory), an append as admin, and a
// worker's append to HO3 refused by the firewall with its AUTHZ_DENIED
// entry in HO3's ledger, exactly as cp-ledger refuses it.
func TestCalls(t *testing.T) {
	p := newPlane(t, true)
	admin := p.client(t, p.admin)

	res, env := call(t, admin, "cp_ledger_verify", map[string]any{"plane": "ho3"})
	require.False(t, res.IsError, "%v", env)
	require.Equal(t, "ok", env["status"])
	require.Equal(t, true, env["result"].(map[string]any)["valid"], "%v", env)

	res, env = call(t, admin, "cp_trace_inventory", nil)
	require.False(t, res.IsError, "%v", env)

	res, env = call(t, admin, "cp_ledger_append", map[string]any{"plane": "ho3", "event_type": "NOTE", "reason": "over mcp"})
	require.False(t, res.IsError, "%v", env)
	ev := env["evidence"].(map[string]any)
	require.NotEmpty(t, ev["ledger_entry_id"])
	require.NotEmpty(t, ev["seq"])

	res, env = call(t, admin, "cp_ledger_show", map[string]any{"plane": "ho3", "event_type": "NOTE"})
	require.False(t, res.IsError, "%v", env)
	entries := env["result"].(map[string]any)["entries"].([]any)
	require.Len(t, entries, 1)
	require.Equal(t, "ops", entries[0].(map[string]any)["actor"], "the actor is the token's subject")

	before := len(denials(t, p.root))
	worker := p.client(t, p.mint(t, "w1", "worker", []any{"ho1"}, "WO-20261206-001", "SES-20261206-0a1b2c3d"))
	res, env = call(t, worker, "cp_ledger_append", map[string]any{"plane": "ho3", "event_type": "NOTE"})
	require.True(t, res.IsError)
	require.Equal(t, "FIREWALL_DENIED", errCode(env), "%v", env)
	ds := denials(t, p.root)
	require.Len(t, ds, before+1)
	d := ds[len(ds)-1]
	require.Equal(t, "w1", d.Metadata["subject"])
	require.Equal(t, "worker", d.Metadata["role"])
	require.Equal(t, "append", d.Metadata["action"])
	require.Equal(t, "ho3", d.Metadata["tier"])
	require.Equal(t, "cp-ledger append", d.SubmissionID)
	require.Equal(t, d.ID, env["evidence"].(map[string]any)["ledger_entry_id"], "the refusal names its entry")

	// The worker's own session: allowed, as from a shell.
	res, env = call(t, worker, "cp_ledger_append", map[string]any{"event_type": "TOOL_CALL"})
	require.False(t, res.IsError, "%v", env)

	// A reader cannot install, revoke or trust: refused, recorded.
	reader := p.client(t, p.mint(t, "r1", "reader", []any{"ho3", "ho2", "ho1"}, "", ""))
	res, env = call(t, reader, "cp_auth_revoke", map[string]any{"sub": "w1"})
	require.True(t, res.IsError)
	require.Equal(t, "FIREWALL_DENIED", errCode(env))
	require.Len(t, denials(t, p.root), before+2)
}

// TestMalformedCalls: a schema violation is the verb's own refusal (exit
// 3's code, isError); arguments that are not a request object, an
// envelope or another operation are refused before the verb; an unknown
// tool is a protocol error.
func TestMalformedCalls(t *testing.T) {
	p := newPlane(t, false)
	cs := p.client(t, "")
	for _, c := range []struct {
		name string
		tool string
		args any
		code string
	}{
		{"unknown field", "cp_ledger_verify", map[string]any{"nope": 1}, "SCHEMA_VIOLATION"},
		{"wrong type", "cp_ledger_show", map[string]any{"limit": "ten"}, "SCHEMA_VIOLATION"},
		{"bad enum", "cp_trace_inventory", map[string]any{"plane": "ho9"}, "SCHEMA_VIOLATION"},
		{"not an object", "cp_ledger_verify", []any{1, 2}, "INVALID_INPUT"},
		{"an ok envelope", "cp_trace_file", map[string]any{"status": "ok", "result": map[string]any{"path": "/etc/passwd"}}, "INVALID_INPUT"},
		{"an error envelope", "cp_ledger_verify", map[string]any{"status": "error", "error": map[string]any{"code": "X"}}, "INVALID_INPUT"},
		{"another operation", "cp_ledger_verify", map[string]any{"operation": "append"}, "INVALID_INPUT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, env := call(t, cs, c.tool, c.args)
			require.True(t, res.IsError)
			require.Equal(t, c.code, errCode(env), "%v", env)
		})
	}
	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "cp_install_bootstrap", Arguments: map[string]any{}})
	require.ErrorContains(t, err, "unknown tool", "a host-level verb is no tool")
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "cp_nope", Arguments: map[string]any{}})
	require.ErrorContains(t, err, "unknown tool")
}

// TestPathsConfined: every path argument must lead inside the served
// plane: absolute paths outside, ".." escapes, links leading out (or
// nowhere) are refused before the verb runs; relative paths are taken
// from the plane root.
func TestPathsConfined(t *testing.T) {
	p := newPlane(t, false)
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.jsonl"), []byte("x\n"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(p.root, "config", "out")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "nothing-yet"), filepath.Join(p.root, "config", "dangling")))
	cs := p.client(t, "")
	for _, c := range []struct {
		name string
		tool string
		args map[string]any
	}{
		{"absolute outside", "cp_ledger_show", map[string]any{"ledger": filepath.Join(outside, "secret.jsonl")}},
		{"dot-dot", "cp_ledger_show", map[string]any{"ledger": "../" + filepath.Base(outside) + "/x.jsonl"}},
		{"dot-dot after a name", "cp_trace_file", map[string]any{"path": "frameworks/../../etc"}},
		{"absolute via trace", "cp_trace_file", map[string]any{"path": "/etc/passwd"}},
		{"link out", "cp_ledger_verify", map[string]any{"ledger": "config/out/secret.jsonl"}},
		{"link out, dir", "cp_pkg_stage", map[string]any{"src": "config/out", "package_id": "PKG-X-001"}},
		{"dangling link", "cp_pkg_init", map[string]any{"output": "config/dangling", "package_id": "PKG-X-001"}},
		{"below a dangling link", "cp_pkg_init", map[string]any{"output": "config/dangling/sub", "package_id": "PKG-X-001"}},
		{"verify key path", "cp_ledger_verify", map[string]any{"plane": "ho3", "verify_key": "/etc/passwd"}},
		{"sign key path", "cp_ledger_checkpoint", map[string]any{"plane": "ho3", "sign_key": "/etc/shadow"}},
		{"trust spec path", "cp_install_trust_add", map[string]any{"key": "package=/etc/passwd"}},
		{"trust remove path", "cp_install_trust_remove", map[string]any{"key": "../x/k.pub"}},
		{"archive", "cp_install_install", map[string]any{"archive": "/tmp/PKG-X-001.tar.gz"}},
		{"gate archive", "cp_gate_check", map[string]any{"archive": "/tmp/PKG-X-001.tar.gz"}},
		{"wo file", "cp_wo_validate", map[string]any{"file": "/etc/hostname"}},
		{"NUL", "cp_trace_file", map[string]any{"path": "a\x00b"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(denials(t, p.root))
			res, env := call(t, cs, c.tool, c.args)
			require.True(t, res.IsError)
			require.Equal(t, CodeOutsidePlane, errCode(env), "%v", env)
			ds := denials(t, p.root)
			require.Len(t, ds, before+1, "the escape attempt is recorded")
			d := ds[len(ds)-1]
			require.Equal(t, CodeOutsidePlane, d.Metadata["code"])
			require.Equal(t, "tester", d.Metadata["subject"], "the OS user, auth being off")
			require.Equal(t, d.ID, env["evidence"].(map[string]any)["ledger_entry_id"])
		})
	}
	// The default of init-config's output is the server's directory.
	res, env := call(t, cs, "cp_pkg_init_config", map[string]any{"package_id": "PKG-CFG-001"})
	require.True(t, res.IsError)
	require.Equal(t, "USAGE", errCode(env), "%v", env)
	_, err := os.Stat("PKG-CFG-001")
	require.ErrorIs(t, err, os.ErrNotExist)

	// Inside the plane, relative to its root: allowed, and the verb sees it.
	res, env = call(t, cs, "cp_ledger_verify", map[string]any{"ledger": "ledger/governance.jsonl"})
	require.False(t, res.IsError, "%v", env)
	res, env = call(t, cs, "cp_trace_file", map[string]any{"path": "tier.json"})
	require.NotEqual(t, CodeOutsidePlane, errCode(env), "%v", env)
	_ = res
	// A verifier key itself is no path.
	req := cli.Request{"verify_key": "ops+0a1b2c3d+AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}
	require.NoError(t, confine(p.root, "cp-ledger verify", req))
	req = cli.Request{"key": "nightly-ci"}
	require.NoError(t, confine(p.root, "cp-install trust-remove", req), "a trusted key's name")
	require.Equal(t, "nightly-ci", req["key"])
	req = cli.Request{"archive": "_staging/PKG-X-001.tar.gz"}
	require.NoError(t, confine(p.root, "cp-install install", req))
	require.Equal(t, filepath.Join(p.root, "_staging", "PKG-X-001.tar.gz"), req["archive"], "relative: from the plane root")
}

// TestPathFieldsComplete holds pathFields to the request schemas: every
// field of a served verb named like a path, or described as one, is
// confined or listed here as not a path.
func TestPathFieldsComplete(t *testing.T) {
	notPaths := map[string]bool{
		// fields piped from upstream results that the verbs ignore
		"signature": true, "key_name": true, "key_hash": true, "files": true, "declared": true, "removed_signature": true,
		"archive_sha256": true,
		// not files
		"checkpoint":    true, // cp-ledger verify: a checkpoint's text, piped
		"from":          true, // cp-ledger verify/consistency: a tree size
		"from_root":     true, // a hash
		"dsn_env":       true, // the name of an environment variable
		"paths":         true, // cp-wo create: scope globs, judged by the work order's rules
		"key_out":       true, // cp-auth init: host-level
		"name":          true, // cp-ledger migrate: a table name in the database
		"work_order_id": true,
		"action":        true, // cp-auth check: the agent's action, judged, never opened
		"resource":      true, // cp-auth check: what the agent's call names, judged, never opened
	}
	ts, err := tools()
	require.NoError(t, err)
	for _, s := range ts {
		verb := s.tool.Name + " " + s.verb.Name
		props, _ := s.schema["properties"].(map[string]any)
		for name, v := range props {
			desc, _ := v.(map[string]any)["description"].(string)
			if typ, ok := v.(map[string]any)["type"]; ok && typ != "string" {
				continue // only a string names a file
			}
			pathy := strings.Contains(name, "path") || strings.Contains(name, "file") || strings.Contains(name, "key") ||
				strings.Contains(name, "ledger") || strings.Contains(name, "archive") || strings.Contains(name, "src") ||
				name == "out" || name == "output" || name == "from" || strings.Contains(name, "checkpoint") ||
				strings.Contains(desc, "path") || strings.Contains(desc, "file") || strings.Contains(desc, "directory")
			if !pathy || notPaths[name] {
				continue
			}
			if _, ok := pathFields[verb][name]; !ok {
				t.Errorf("%s: field %q (%s) looks like a path: add it to pathFields or notPaths", verb, name, desc)
			}
		}
	}
}

// TestConcurrentCalls: calls in flight together on one session (clients
// may pipeline) each get their own answer, and the appends they make land
// once each in a ledger that still verifies.
func TestConcurrentCalls(t *testing.T) {
	p := newPlane(t, true)
	cs := p.client(t, p.admin)
	const n = 8
	errs := make(chan error, 2*n)
	for i := range n {
		go func() {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "cp_ledger_append",
				Arguments: map[string]any{"plane": "ho2", "event_type": "NOTE", "submission_id": "c" + strconv.Itoa(i)}})
			if err == nil && res.IsError {
				err = errors.New(res.Content[0].(*mcp.TextContent).Text)
			}
			errs <- err
		}()
		go func() {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "cp_trace_inventory", Arguments: map[string]any{}})
			if err == nil && res.IsError {
				err = errors.New(res.Content[0].(*mcp.TextContent).Text)
			}
			errs <- err
		}()
	}
	for range 2 * n {
		require.NoError(t, <-errs)
	}
	res, env := call(t, cs, "cp_ledger_show", map[string]any{"plane": "ho2", "event_type": "NOTE"})
	require.False(t, res.IsError, "%v", env)
	require.EqualValues(t, n, env["result"].(map[string]any)["count"])
	res, env = call(t, cs, "cp_ledger_verify", map[string]any{"plane": "ho2"})
	require.False(t, res.IsError, "%v", env)
}
