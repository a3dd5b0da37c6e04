package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/authcmd"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/gatecmd"
	"github.com/control-plane/cp/internal/installcmd"
	"github.com/control-plane/cp/internal/ledgercmd"
	"github.com/control-plane/cp/internal/llmcmd"
	"github.com/control-plane/cp/internal/pkgcmd"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/routecmd"
	"github.com/control-plane/cp/internal/wocmd"
	"github.com/control-plane/cp/pkg/ledger"
)

// dispatcher is one binary's in-process entry (its package's Dispatch).
type dispatcher func(ctx context.Context, req cli.Request, opts cli.Options) cli.Response

var tools = map[string]dispatcher{
	"cp-ledger":  ledgercmd.Dispatch,
	"cp-pkg":     pkgcmd.Dispatch,
	"cp-install": installcmd.Dispatch,
	"cp-gate":    gatecmd.Dispatch,
	"cp-auth":    authcmd.Dispatch,
	"cp-wo":      wocmd.Dispatch,
	"cp-route":   routecmd.Dispatch,
	"cp-llm":     llmcmd.Dispatch,
}

// The tokens of the matrix, one column each, in this order: every role
// with all three tiers and with one tier only (HO2; a worker's one tier
// is HO1), workers bound to work order matrixWO and session matrixSES.
var matrixTokens = []struct {
	name, role string
	tiers      []string
}{
	{"admin", auth.RoleAdmin, []string{"ho3", "ho2", "ho1"}},
	{"admin-ho2", auth.RoleAdmin, []string{"ho2"}},
	{"maint", auth.RoleMaintainer, []string{"ho3", "ho2", "ho1"}},
	{"maint-ho2", auth.RoleMaintainer, []string{"ho2"}},
	{"auditor", auth.RoleAuditor, []string{"ho3", "ho2", "ho1"}},
	{"auditor-ho2", auth.RoleAuditor, []string{"ho2"}},
	{"reader", auth.RoleReader, []string{"ho3", "ho2", "ho1"}},
	{"reader-ho2", auth.RoleReader, []string{"ho2"}},
	{"worker", auth.RoleWorker, []string{"ho3", "ho2", "ho1"}},
	{"worker-ho1", auth.RoleWorker, []string{"ho1"}},
}

const (
	matrixWO  = "WO-20261206-001"
	matrixSES = "SES-20261206-0000a001"
	otherSES  = "SES-20261206-0000b002"
)

// matrixCase is one request and what the firewall must answer for each
// token of matrixTokens: 'A' not refused by the firewall (the verb may
// still fail for its own reasons), 'D' refused with FIREWALL_DENIED. The
// expectations are written out here, from DESIGN.md §8's table, never
// computed from auth.Decide. action and tier are what the AUTHZ_DENIED
// entry must name.
type matrixCase struct {
	want   string // one letter per token of matrixTokens, in its order
	tool   string
	req    cli.Request
	action auth.Action
	tier   string
}

func matrixCases(dir string) []matrixCase {
	r := func(op string, kv ...any) cli.Request {
		req := cli.Request{"operation": op}
		for i := 0; i < len(kv); i += 2 {
			req[kv[i].(string)] = kv[i+1]
		}
		return req
	}
	missing := filepath.Join(dir, "missing")
	return []matrixCase{
		// admin admin-ho2 maint maint-ho2 auditor auditor-ho2 reader reader-ho2 worker worker-ho1
		{"ADADDDDDDD", "cp-ledger", r("append", "plane", "ho3", "event_type", "NOTE"), auth.ActionAppend, "ho3"},
		{"AAAADDDDDD", "cp-ledger", r("append", "plane", "ho2", "event_type", "NOTE"), auth.ActionAppend, "ho2"},
		{"ADADDDDDDD", "cp-ledger", r("append", "plane", "ho1", "event_type", "NOTE"), auth.ActionAppend, "ho1"},
		{"ADADDDDDAA", "cp-ledger", r("append", "session_id", matrixSES, "event_type", "NOTE"), auth.ActionAppend, "ho1"},
		{"ADADDDDDDD", "cp-ledger", r("append", "session_id", otherSES, "event_type", "NOTE"), auth.ActionAppend, "ho1"},
		{"AAAAAAAAAA", "cp-ledger", r("show", "plane", "ho3"), auth.ActionRead, "ho3"},
		{"AAAAAAAAAA", "cp-ledger", r("show", "plane", "ho2"), auth.ActionRead, "ho2"},
		{"ADADADADAA", "cp-ledger", r("show", "plane", "ho1"), auth.ActionRead, "ho1"},
		{"ADADADADAA", "cp-ledger", r("show", "session_id", otherSES), auth.ActionRead, "ho1"},
		{"AAAAAAAAAA", "cp-ledger", r("verify", "plane", "ho3"), auth.ActionRead, "ho3"},
		{"ADADADADAA", "cp-ledger", r("verify", "plane", "ho1"), auth.ActionRead, "ho1"},
		{"ADADDDDDDD", "cp-ledger", r("checkpoint", "plane", "ho3"), auth.ActionCheckpoint, "ho3"},
		{"AAAADDDDDD", "cp-ledger", r("checkpoint", "plane", "ho2"), auth.ActionCheckpoint, "ho2"},
		{"ADADDDDDDD", "cp-ledger", r("checkpoint", "plane", "ho1"), auth.ActionCheckpoint, "ho1"},
		{"ADADDDDDDD", "cp-ledger", r("genesis", "plane", "ho3"), auth.ActionAppend, "ho3"},
		{"AAAADDDDDD", "cp-ledger", r("genesis", "plane", "ho2"), auth.ActionAppend, "ho2"},

		{"AAAAAAAAAA", "cp-pkg", r("init", "package_id", "PKG-M-001", "framework", "FMWK-M-001", "output", missing+"/init-$TOK"), auth.ActionAuthor, ""},
		{"AAAAAAAAAA", "cp-pkg", r("init-config", "package_id", "PKG-MCFG-001", "output", missing+"/cfg-$TOK"), auth.ActionAuthor, ""},
		{"ADADDDDDDD", "cp-pkg", r("stage", "package_id", "PKG-M-001", "src", missing), auth.ActionAuthor, "ho3"},
		{"ADADDDDDDD", "cp-pkg", r("sign", "archive", missing+".tar.gz", "key", missing+".key"), auth.ActionSign, "ho3"},
		{"ADADDDDDDD", "cp-pkg", r("keygen", "name", "m", "out", missing+"/keys-$TOK"), auth.ActionKeygen, "ho3"},
		{"ADADDDDDDD", "cp-pkg", r("register-framework", "framework_id", "FMWK-M-001", "src", missing+".md"), auth.ActionRegister, "ho3"},
		{"ADADDDDDDD", "cp-pkg", r("register-spec", "spec_id", "SPEC-M-001", "src", missing), auth.ActionRegister, "ho3"},
		{"AAAAAAAAAA", "cp-pkg", r("check-framework", "framework_id", "FMWK-M-001", "src", missing+".md"), auth.ActionRead, "ho3"},
		{"AAAAAAAAAA", "cp-pkg", r("preflight", "archive", missing+".tar.gz"), auth.ActionRead, "ho3"},

		{"ADADDDDDDD", "cp-install", r("install", "archive", missing+".tar.gz"), auth.ActionInstall, "ho3"},
		{"ADADDDDDDD", "cp-install", r("checkpoint", "label", "matrix"), auth.ActionCheckpoint, "ho3"},
		{"AAAAAAAAAA", "cp-install", r("versions"), auth.ActionRead, "ho3"},
		{"ADADDDDDDD", "cp-install", r("rollback", "version_id", "VER-19700101T000000Z-00000000"), auth.ActionRollback, "ho3"},
		{"ADADDDDDDD", "cp-install", r("recover"), auth.ActionRecover, "ho3"},
		{"ADADDDDDDD", "cp-install", r("bootstrap"), auth.ActionBootstrap, "ho3"},
		{"ADDDDDDDDD", "cp-install", r("trust-add", "key", "not-a-key", "purpose", []any{"package"}), auth.ActionTrust, "ho3"},
		{"ADDDDDDDDD", "cp-install", r("trust-remove", "key", "no-such-key"), auth.ActionTrust, "ho3"},

		{"AAAAAAAAAA", "cp-gate", r("check", "plane", "ho3", "gate", []any{"G0K"}), auth.ActionRead, "ho3"},
		{"ADADADADAA", "cp-gate", r("check", "plane", "ho1", "gate", []any{"G0K"}), auth.ActionRead, "ho1"},
		{"AAAAAAAAAA", "cp-gate", r("integrity", "plane", "ho2"), auth.ActionRead, "ho2"},

		{"AAAADDDDDD", "cp-wo", r("create", "type", "investigation", "title", "matrix"), auth.ActionWOCreate, "ho2"},
		{"AAAAAAAAAA", "cp-wo", r("status", "work_order_id", matrixWO), auth.ActionRead, "ho2"},
		{"AAAAAAAAAA", "cp-wo", r("validate", "work_order_id", matrixWO), auth.ActionRead, "ho2"},
		{"ADADDDDDDD", "cp-wo", r("approve", "work_order_id", matrixWO, "key", missing+".key"), auth.ActionWOApprove, "ho3"},
		{"ADADDDDDDD", "cp-wo", r("reject", "work_order_id", matrixWO), auth.ActionWOApprove, "ho3"},
		{"AAAADDDDDD", "cp-wo", r("cancel", "work_order_id", matrixWO), auth.ActionWOCancel, "ho2"},
		{"AAAADDDDAD", "cp-wo", r("start", "work_order_id", matrixWO), auth.ActionWOStep, "ho2"},
		{"ADADDDDDAA", "cp-wo", r("turn", "session_id", matrixSES, "turn_number", 1, "work_order_id", matrixWO, "declared_inputs", []any{}), auth.ActionWOStep, "ho1"},
		{"ADADDDDDDD", "cp-wo", r("turn", "session_id", otherSES, "turn_number", 1, "work_order_id", matrixWO, "declared_inputs", []any{}), auth.ActionWOStep, "ho1"},
		{"AAAADDDDAD", "cp-wo", r("complete", "work_order_id", matrixWO), auth.ActionWOStep, "ho2"},

		{"AAAAAAAAAA", "cp-auth", r("whoami"), auth.ActionRead, "ho3"},
		{"AAAAAAAAAA", "cp-auth", r("check", "action", "file.read", "resource", "/etc/hosts"), auth.ActionRead, "ho3"},
		{"ADDDDDDDDD", "cp-auth", r("token", "sub", "m1", "role", "reader", "tiers", []any{"ho3"}), auth.ActionToken, "ho3"},
		{"ADDDDDDDDD", "cp-auth", r("revoke", "jti", "tok-00000000000000000000000000000000"), auth.ActionRevoke, "ho3"},
		{"ADDDDDDDDD", "cp-auth", r("init"), auth.ActionTrust, "ho3"},

		// cp-route: a decision is recorded in the ledger of the tier it is
		// routed in, which the token must hold (admin, maintainer, and a
		// worker within its work order, in its own session); auditors and
		// readers never route. A replay and list-handlers are reads.
		{"ADADDDDDAD", "cp-route", r("route", "plane", "ho3", "intent", "x"), auth.ActionRoute, "ho3"},
		{"AAAADDDDAD", "cp-route", r("route", "plane", "ho2", "intent", "x"), auth.ActionRoute, "ho2"},
		{"ADADDDDDAA", "cp-route", r("route", "plane", "ho1", "intent", "x"), auth.ActionRoute, "ho1"},
		{"ADADDDDDAA", "cp-route", r("route", "plane", "ho1", "session_id", matrixSES, "intent", "x"), auth.ActionRoute, "ho1"},
		{"ADADDDDDDD", "cp-route", r("route", "plane", "ho1", "session_id", otherSES, "intent", "x"), auth.ActionRoute, "ho1"},
		{"ADADDDDDDD", "cp-route", r("route", "plane", "ho1", "work_order_id", "WO-20261206-999", "intent", "x"), auth.ActionRoute, "ho1"},
		{"AAAAAAAAAA", "cp-route", r("route", "plane", "ho3", "replay", 1), auth.ActionRead, "ho3"},
		{"AAAAAAAAAA", "cp-route", r("list-handlers"), auth.ActionRead, "ho3"},

		// cp-llm: a call is the llm action at HO1 within the caller's work
		// order and session (a worker's raw prompt is then refused by the
		// gateway, not the firewall); recover settles reservations in HO2
		// as an HO3 recovery, never a worker's (it writes LLM_CALLs for
		// other work orders' reservations).
		{"AAAAAAAAAA", "cp-llm", r("list-providers"), auth.ActionRead, "ho3"},
		{"ADADDDDDDD", "cp-llm", r("recover"), auth.ActionRecover, "ho3"},
		{"ADADDDDDAA", "cp-llm", r("complete", "prompt", "x", "work_order_id", matrixWO, "session_id", matrixSES), auth.ActionLLM, "ho1"},
		{"ADADDDDDDD", "cp-llm", r("complete", "prompt", "x", "work_order_id", matrixWO, "session_id", otherSES), auth.ActionLLM, "ho1"},
	}
}

// matrixPlane is the one plane the matrix runs against, auth initialized.
type matrixPlane struct {
	root, gov string
	admin     string // init's admin token
}

// newMatrixPlane bootstraps a plane with its keys under a temporary
// XDG_CONFIG_HOME and runs cp-auth init on it.
func newMatrixPlane(t *testing.T) matrixPlane {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "config"))
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "ops"}})
	require.NoError(t, err)
	resp := authcmd.Dispatch(context.Background(), cli.Request{"operation": "init", "sub": "ops"}, cli.Options{Env: &cli.Env{Root: root}})
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
	env, err := resp.Envelope()
	require.NoError(t, err)
	return matrixPlane{root: root, gov: filepath.Join(root, "ledger", "governance.jsonl"),
		admin: env.Result.(map[string]any)["token"].(string)}
}

// as dispatches req to tool with tok as CONTROL_PLANE_TOKEN.
func (p matrixPlane) as(tool, tok string, req cli.Request) cli.Response {
	return tools[tool](context.Background(), req, cli.Options{Env: &cli.Env{Root: p.root, Token: tok}})
}

// mint mints a token with the admin token through cp-auth token.
func (p matrixPlane) mint(t *testing.T, sub, role string, tiers []string, wo, ses string) string {
	t.Helper()
	ts := make([]any, len(tiers))
	for i, s := range tiers {
		ts[i] = s
	}
	req := cli.Request{"operation": "token", "sub": sub, "role": role, "tiers": ts, "ttl": "1h"}
	if wo != "" {
		req["wo"], req["session"] = wo, ses
	}
	resp := p.as("cp-auth", p.admin, req)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
	env, err := resp.Envelope()
	require.NoError(t, err)
	return env.Result.(map[string]any)["token"].(string)
}

// denials counts the AUTHZ_DENIED entries of HO3's ledger and returns the
// last one.
func (p matrixPlane) denials(t *testing.T) (int, *ledger.Entry) {
	t.Helper()
	f, err := os.Open(p.gov)
	require.NoError(t, err)
	defer f.Close()
	n, last := 0, []byte(nil)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"event_type":"AUTHZ_DENIED"`)) {
			n++
			last = append(last[:0], sc.Bytes()...)
		}
	}
	require.NoError(t, sc.Err())
	if last == nil {
		return 0, nil
	}
	e, err := ledger.ParseLine(last)
	require.NoError(t, err)
	return n, e
}

// refusalCode is the response's error code, "" when it has none.
func refusalCode(t *testing.T, resp cli.Response) string {
	t.Helper()
	env, err := resp.Envelope()
	require.NoError(t, err, "stdout %q stderr %q", resp.Stdout, resp.Stderr)
	if env.Error == nil {
		return ""
	}
	return env.Error.Code
}

// firewallCode reports whether code is one of the firewall's refusals
// (the Guard's codes; AUTH_INITIALIZED and AUTH_KEY_UNAVAILABLE are
// cp-auth's own answers).
func firewallCode(code string) bool {
	switch code {
	case auth.CodeDenied, auth.CodeMissing, auth.CodeInvalid, auth.CodeExpired, auth.CodeRevoked,
		auth.CodeOffRefused, auth.CodePolicy, auth.CodeNotWritable:
		return true
	}
	return false
}

// requireRecorded asserts that resp is a refusal with code, exit 1, that
// one AUTHZ_DENIED entry was appended to HO3 since there were before, and
// that it names the subject, role, action, tier and code.
func (p matrixPlane) requireRecorded(t *testing.T, resp cli.Response, before int, code, subject, role string, action auth.Action, tier string) {
	t.Helper()
	require.Equal(t, cli.ExitDenied, resp.Exit, "stdout %s stderr %s", resp.Stdout, resp.Stderr)
	require.Equal(t, code, refusalCode(t, resp))
	tool, _, _ := strings.Cut(string(resp.Stderr), ":")
	require.Regexp(t, `^cp-[a-z]+: error: `, string(resp.Stderr), "tool %s", tool)
	n, e := p.denials(t)
	require.Equal(t, before+1, n, "one AUTHZ_DENIED per refusal")
	m := e.Metadata
	require.Equal(t, subject, m["subject"])
	require.Equal(t, role, m["role"])
	require.Equal(t, string(action), m["action"])
	require.Equal(t, tier, m["tier"])
	require.Equal(t, code, m["code"])
	require.Equal(t, "DENIED", e.Decision)
	require.NotEmpty(t, e.Reason)
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, e.ID, env.Evidence["ledger_entry_id"], "the refusal names its entry")
}

// TestFirewallMatrix runs the (role × tier × action) matrix of DESIGN.md
// §8 through every binary's in-process Dispatch, on one plane: each
// request is refused with FIREWALL_DENIED (exit 1, its AUTHZ_DENIED entry
// in HO3) or not refused by the firewall, as the literal table says.
func TestFirewallMatrix(t *testing.T) {
	p := newMatrixPlane(t)
	dir := t.TempDir()
	toks := make([]string, len(matrixTokens))
	for i, mt := range matrixTokens {
		wo, ses := "", ""
		if mt.role == auth.RoleWorker {
			wo, ses = matrixWO, matrixSES
		}
		toks[i] = p.mint(t, mt.name, mt.role, mt.tiers, wo, ses)
	}
	// The other session exists, so reading it is a read, not a miss.
	resp := p.as("cp-ledger", p.admin, cli.Request{"operation": "append", "session_id": otherSES, "event_type": "NOTE"})
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))

	for _, c := range matrixCases(dir) {
		require.Len(t, c.want, len(matrixTokens), "%s %v", c.tool, c.req)
		for i, mt := range matrixTokens {
			name := c.tool + " " + c.req["operation"].(string) + " " + c.tier + " as " + mt.name
			t.Run(name, func(t *testing.T) {
				before, _ := p.denials(t)
				req := cli.Request{}
				for k, v := range c.req { // $TOK: the token's name, so each makes its own files
					if s, ok := v.(string); ok {
						v = strings.ReplaceAll(s, "$TOK", mt.name)
					}
					req[k] = v
				}
				resp := p.as(c.tool, toks[i], req)
				code := refusalCode(t, resp)
				switch c.want[i] {
				case 'D':
					p.requireRecorded(t, resp, before, auth.CodeDenied, mt.name, mt.role, c.action, c.tier)
					require.Contains(t, string(resp.Stderr), c.tool+": error: ")
				case 'A':
					require.False(t, firewallCode(code), "refused by the firewall: %s %s", resp.Stdout, resp.Stderr)
					// A request the schema refuses never reaches the firewall:
					// the case would prove nothing.
					require.NotEqual(t, "SCHEMA_VIOLATION", code, "%s", resp.Stdout)
					require.NotEqual(t, "USAGE", code, "%s", resp.Stdout)
					if os.Getenv("MATRIX_DEBUG") != "" {
						t.Logf("%s: exit %d %s", name, resp.Exit, code)
					}
					n, _ := p.denials(t)
					require.Equal(t, before, n, "no AUTHZ_DENIED for a request the firewall allowed")
				default:
					t.Fatalf("want %q", c.want)
				}
			})
		}
	}
	requireNoToken(t, p.root, append(toks, p.admin))
}

// TestFirewallBadTokens: tokens that must not admit anyone, each refused
// with its AUTH_* code (or FIREWALL_DENIED for a worker naming another
// work order) and recorded as AUTHZ_DENIED with subject unauthenticated.
func TestFirewallBadTokens(t *testing.T) {
	p := newMatrixPlane(t)
	ctx := context.Background()
	tier, err := plane.ReadTier(p.root)
	require.NoError(t, err)
	keyFile, err := auth.DefaultKeyPath(tier.PlaneName)
	require.NoError(t, err)
	priv, _, err := auth.LoadKey(keyFile)
	require.NoError(t, err)
	now := time.Now().Unix()
	claims := func(mod func(*auth.Claims)) auth.Claims {
		c := auth.Claims{Subject: "r1", Role: auth.RoleReader, Tiers: []string{"ho3"}, Audience: tier.PlaneName,
			IssuedAt: now - 60, ExpiresAt: now + 3600, ID: auth.NewID()}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	mint := func(k ed25519.PrivateKey, c auth.Claims) string {
		tok, err := auth.Mint(k, c)
		require.NoError(t, err)
		return tok
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	good := mint(priv, claims(nil))
	seg := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	// HS256 over the header and payload, keyed with the bytes of the
	// plane's trusted public key: the classic algorithm confusion.
	pub := priv.Public().(ed25519.PublicKey)
	hsHead := b64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	mac := hmac.New(sha256.New, pub)
	mac.Write([]byte(hsHead + "." + seg[1]))
	hs256 := hsHead + "." + seg[1] + "." + b64(mac.Sum(nil))
	none := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + seg[1] + "."

	revoked := p.mint(t, "gone", auth.RoleReader, []string{"ho3"}, "", "")
	resp := p.as("cp-auth", p.admin, cli.Request{"operation": "revoke", "sub": "gone"})
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))

	for _, c := range []struct {
		name, tok, code string
	}{
		{"expired", mint(priv, claims(func(c *auth.Claims) { c.IssuedAt, c.ExpiresAt = now-7200, now-3600 })), auth.CodeExpired},
		{"not yet valid", mint(priv, claims(func(c *auth.Claims) { c.NotBefore = now + 3600 })), auth.CodeExpired},
		{"another plane", mint(priv, claims(func(c *auth.Claims) { c.Audience = "plane-0123456789abcdef" })), auth.CodeInvalid},
		{"another key", mint(otherKey, claims(nil)), auth.CodeInvalid},
		{"alg none", none, auth.CodeInvalid},
		{"HS256 keyed with the public key", hs256, auth.CodeInvalid},
		{"truncated", good[:len(good)-10], auth.CodeInvalid},
		{"payload of another token", seg[0] + "." + strings.Split(p.admin, ".")[1] + "." + seg[2], auth.CodeInvalid},
		{"revoked", revoked, auth.CodeRevoked},
		{"none at all", "", auth.CodeMissing},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, tool := range []string{"cp-ledger", "cp-pkg", "cp-install", "cp-gate", "cp-auth"} {
				before, _ := p.denials(t)
				op := map[string]string{"cp-ledger": "show", "cp-pkg": "check-framework", "cp-install": "versions",
					"cp-gate": "integrity", "cp-auth": "whoami"}[tool]
				req := cli.Request{"operation": op}
				if tool == "cp-pkg" {
					req["framework_id"], req["src"] = "FMWK-X-001", "x.md"
				}
				resp := tools[tool](ctx, req, cli.Options{Env: &cli.Env{Root: p.root, Token: c.tok}})
				p.requireRecorded(t, resp, before, c.code, "unauthenticated", "", auth.ActionRead, "ho3")
				if c.tok != "" {
					require.NotContains(t, string(resp.Stdout)+string(resp.Stderr), c.tok)
				}
			}
		})
	}

	// A worker bound to one work order that names another.
	w := p.mint(t, "w1", auth.RoleWorker, []string{"ho1"}, matrixWO, matrixSES)
	before, _ := p.denials(t)
	resp = p.as("cp-ledger", w, cli.Request{"operation": "append", "session_id": matrixSES, "work_order_id": "WO-20261206-999", "event_type": "NOTE"})
	p.requireRecorded(t, resp, before, auth.CodeDenied, "w1", auth.RoleWorker, auth.ActionAppend, "ho1")
	_, e := p.denials(t)
	require.Equal(t, "WO-20261206-999", e.Metadata["work_order_id"])
	require.Equal(t, matrixSES, e.Metadata["session_id"])
	// Its own work order is allowed.
	resp = p.as("cp-ledger", w, cli.Request{"operation": "append", "session_id": matrixSES, "work_order_id": matrixWO, "event_type": "NOTE"})
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))

	requireNoToken(t, p.root, []string{p.admin, good, revoked, w, hs256})
}

// requireNoToken asserts that no file of the plane holds any of toks, or
// the signature of one.
func requireNoToken(t *testing.T, root string, toks []string) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, tok := range toks {
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			require.False(t, bytes.Contains(b, []byte(tok)) || len(sig) > 0 && bytes.Contains(b, []byte(sig)), "%s holds a token", path)
		}
		return nil
	}))
}

// TestFirewallPolicyTightens: a Cedar forbid in config/policy.cedar refuses
// what the table allows (FIREWALL_DENIED naming the policy, recorded), and
// allows nothing the table refuses; a policy file that does not parse
// refuses every mutating request (POLICY_INVALID, recorded) and no read.
func TestFirewallPolicyTightens(t *testing.T) {
	p := newMatrixPlane(t)
	maint := p.mint(t, "m1", auth.RoleMaintainer, []string{"ho3", "ho2", "ho1"}, "", "")
	reader := p.mint(t, "r1", auth.RoleReader, []string{"ho3"}, "", "")
	policy := filepath.Join(p.root, "config", "policy.cedar")
	require.NoError(t, os.WriteFile(policy, []byte(`@id("no-deploy")
forbid (principal, action == Action::"append", resource) when { context.event_type == "DEPLOY" };
@id("no-reader-anything")
forbid (principal, action, resource) when { principal.role == "reader" && action != Action::"read" };
`), 0o644))

	before, _ := p.denials(t)
	resp := p.as("cp-ledger", maint, cli.Request{"operation": "append", "plane": "ho3", "event_type": "DEPLOY"})
	p.requireRecorded(t, resp, before, auth.CodeDenied, "m1", auth.RoleMaintainer, auth.ActionAppend, "ho3")
	require.Contains(t, string(resp.Stderr), "forbidden by policy no-deploy")
	resp = p.as("cp-ledger", maint, cli.Request{"operation": "append", "plane": "ho3", "event_type": "NOTE"})
	require.Equal(t, cli.ExitOK, resp.Exit, "the table allows it and no policy forbids it: %s", resp.Stdout)
	// The table's refusal stands, whatever the policies say (a forbid can
	// only add refusals): the reader's append is the table's denial.
	before, _ = p.denials(t)
	resp = p.as("cp-ledger", reader, cli.Request{"operation": "append", "plane": "ho3", "event_type": "NOTE"})
	p.requireRecorded(t, resp, before, auth.CodeDenied, "r1", auth.RoleReader, auth.ActionAppend, "ho3")
	require.Contains(t, string(resp.Stderr), "role reader may not append")

	// A policy that does not parse: every mutating request refused, reads not.
	require.NoError(t, os.WriteFile(policy, []byte("forbid (principal, action, resource) when { context.hour_utc >= };\n"), 0o644))
	before, _ = p.denials(t)
	resp = p.as("cp-ledger", maint, cli.Request{"operation": "append", "plane": "ho3", "event_type": "NOTE"})
	p.requireRecorded(t, resp, before, auth.CodePolicy, "m1", auth.RoleMaintainer, auth.ActionAppend, "ho3")
	before, _ = p.denials(t)
	resp = p.as("cp-install", p.admin, cli.Request{"operation": "checkpoint", "label": "x"})
	p.requireRecorded(t, resp, before, auth.CodePolicy, "ops", auth.RoleAdmin, auth.ActionCheckpoint, "ho3")
	resp = p.as("cp-ledger", maint, cli.Request{"operation": "verify", "plane": "ho3"})
	require.Equal(t, cli.ExitOK, resp.Exit, "%s", resp.Stdout)
	// A file where the policy should be that is not a regular file: refused.
	require.NoError(t, os.Remove(policy))
	require.NoError(t, os.Symlink(filepath.Join(t.TempDir(), "elsewhere.cedar"), policy))
	before, _ = p.denials(t)
	resp = p.as("cp-ledger", maint, cli.Request{"operation": "append", "plane": "ho3", "event_type": "NOTE"})
	p.requireRecorded(t, resp, before, auth.CodePolicy, "m1", auth.RoleMaintainer, auth.ActionAppend, "ho3")
}
