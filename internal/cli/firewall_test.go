package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// fakeGuard admits as id (or refuses with admitErr) and judges by deny;
// it counts what it was asked.
type fakeGuard struct {
	id       Identity
	admitErr error
	deny     func(a Access) error
	admits   int
	asked    []Access
}

func (g *fakeGuard) Admit(ctx context.Context, root string) (auth.Identity, error) {
	g.admits++
	return g.id, g.admitErr
}

func (g *fakeGuard) Authorize(ctx context.Context, id auth.Identity, a auth.Access) error {
	g.asked = append(g.asked, a)
	if g.deny != nil {
		return g.deny(a)
	}
	return nil
}

// guardedTool is echoTool with its verbs declaring an action and counting
// the requests that reach them; "touch" creates the file its name gives.
func guardedTool(ran *int, who *Identity) *Tool {
	t := echoTool()
	for _, v := range t.Verbs {
		run := v.Run
		v.Action, v.Tier = ActionAppend, TierHO3
		v.Run = func(ctx context.Context, c *Call, req Request) Outcome {
			*ran++
			*who = c.Identity
			if p := req.String("name"); strings.HasPrefix(p, "/") {
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					return Outcome{Err: err}
				}
			}
			return run(ctx, c, req)
		}
	}
	return t
}

func TestFirewallDenies(t *testing.T) {
	var ran int
	var who Identity
	var recorded []Access
	target := filepath.Join(t.TempDir(), "made")
	g := &fakeGuard{id: Identity{Subject: "mallory", Auth: auth.AuthOff},
		deny: func(a Access) error { return errors.New("not on this tier") }}
	opts := Options{
		Env:   &Env{},
		Guard: g,
		Record: func(ctx context.Context, c *Call, a Access, refusal *Error) (string, int64, error) {
			recorded = append(recorded, a)
			return "LED-0000000000000001", 7, nil
		},
	}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": target}, opts)
	require.Equal(t, ExitDenied, resp.Exit)
	require.Zero(t, ran, "a refused request never reaches its verb")
	require.NoFileExists(t, target, "nothing of a refused verb runs")
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, "error", env.Status)
	require.Equal(t, "FIREWALL_DENIED", env.Error.Code)
	require.Equal(t, "LED-0000000000000001", env.Evidence["ledger_entry_id"], "the refusal's record is its evidence")
	require.Equal(t, []Access{{Subject: "mallory", Action: ActionAppend, Tier: "ho3", Tool: "cp-test", Verb: "echo"}}, recorded)
	require.Contains(t, string(resp.Stderr), "cp-test: error: ")
}

// TestAdmitRefused: a caller the Guard does not admit is refused with the
// Guard's code, recorded as "unauthenticated", and never authorized.
func TestAdmitRefused(t *testing.T) {
	var ran int
	var who Identity
	var recorded []Access
	target := filepath.Join(t.TempDir(), "made")
	g := &fakeGuard{admitErr: Errorf(ExitDenied, "AUTH_EXPIRED", "token expired")}
	opts := Options{Env: &Env{}, Guard: g,
		Record: func(ctx context.Context, c *Call, a Access, refusal *Error) (string, int64, error) {
			recorded = append(recorded, a)
			return "", 0, nil
		}}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": target}, opts)
	require.Equal(t, ExitDenied, resp.Exit)
	require.Zero(t, ran)
	require.NoFileExists(t, target)
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, "AUTH_EXPIRED", env.Error.Code)
	require.Empty(t, g.asked, "an unadmitted caller is not authorized")
	require.Len(t, recorded, 1)
	require.Equal(t, "unauthenticated", recorded[0].Subject)
	require.Contains(t, string(resp.Stderr), "cp-test: error: token expired")
}

// TestRefusalCodes: a coded refusal keeps its code and exits 1 whatever
// the class its code has elsewhere.
func TestRefusalCodes(t *testing.T) {
	for _, code := range []string{"FIREWALL_DENIED", "AUTH_MISSING", "AUTH_INVALID", "AUTH_REVOKED", "POLICY_INVALID", "PLANE_NOT_WRITABLE"} {
		var ran int
		var who Identity
		g := &fakeGuard{id: Identity{Subject: "w", Auth: auth.AuthToken},
			deny: func(a Access) error { return Errorf(ExitUnavailable, code, "no") }}
		resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"},
			Options{Env: &Env{}, Guard: g, Record: func(context.Context, *Call, Access, *Error) (string, int64, error) { return "", 0, nil }})
		require.Equal(t, ExitDenied, resp.Exit, code)
		env, err := resp.Envelope()
		require.NoError(t, err)
		require.Equal(t, code, env.Error.Code)
		require.Zero(t, ran)
	}
}

func TestFirewallOncePerAccessInAStream(t *testing.T) {
	var ran int
	var who Identity
	g := &fakeGuard{id: Identity{Subject: "alice", Auth: auth.AuthOff}}
	opts := Options{Env: &Env{}, Guard: g}
	var out, errb bytes.Buffer
	in := strings.NewReader(`{"name":"a"}` + "\n" + `{"name":"b"}` + "\n" + `{"name":"c"}` + "\n")
	code := RunWith(context.Background(), guardedTool(&ran, &who), opts, []string{"stream"}, in, &out, &errb)
	require.Equal(t, ExitOK, code, errb.String())
	require.Equal(t, 3, ran)
	require.Len(t, g.asked, 1, "one decision per Access")
	require.Equal(t, 1, g.admits, "one admission per run")
	require.Equal(t, Identity{Subject: "alice", Auth: auth.AuthOff}, who, "the call carries the identity admitted")
}

// TestStreamStopsAtRefusal: in a stream the requests before a refused one
// run, the refused one and those after do not.
func TestStreamStopsAtRefusal(t *testing.T) {
	var ran int
	var who Identity
	tool := guardedTool(&ran, &who)
	tool.Verbs[1].Scope = func(c *Call, req Request) (string, string, string, error) {
		return "", req.String("name"), "", nil
	}
	g := &fakeGuard{id: Identity{Subject: "w", Auth: auth.AuthToken}, deny: func(a Access) error {
		if a.Tier == "ho3" {
			return Errorf(ExitDenied, "FIREWALL_DENIED", "a worker appends to HO1 only")
		}
		return nil
	}}
	var out, errb bytes.Buffer
	in := strings.NewReader(`{"name":"ho1"}` + "\n" + `{"name":"ho1"}` + "\n" + `{"name":"ho3"}` + "\n" + `{"name":"ho1"}` + "\n")
	code := RunWith(context.Background(), tool, Options{Env: &Env{}, Guard: g}, []string{"stream"}, in, &out, &errb)
	require.Equal(t, ExitDenied, code)
	require.Equal(t, 2, ran, "the requests before the refusal ran, none after")
	require.Len(t, g.asked, 2, "ho1 decided once, ho3 once")
	require.Contains(t, errb.String(), "cp-test: error: a worker appends to HO1 only")
}

func TestDefaultGuardRunsTheVerb(t *testing.T) {
	var ran int
	var who Identity
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"}, Options{Env: &Env{}})
	require.Equal(t, ExitOK, resp.Exit, string(resp.Stderr))
	require.Equal(t, 1, ran)
	require.Equal(t, OSIdentity(), who, "a plane without auth: the OS user asks")
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, map[string]any{"name": "x"}, env.Result)
}

// TestGivenIdentityIsAdmitted: Options.Identity is taken as admitted (the
// Guard's Admit is not asked) and still authorized.
func TestGivenIdentityIsAdmitted(t *testing.T) {
	var ran int
	var who Identity
	id := Identity{Subject: "svc", Auth: auth.AuthToken, Claims: &auth.Claims{Subject: "svc", Role: auth.RoleAdmin}}
	g := &fakeGuard{admitErr: errors.New("must not be asked")}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"}, Options{Env: &Env{}, Identity: id, Guard: g})
	require.Equal(t, ExitOK, resp.Exit, string(resp.Stderr))
	require.Zero(t, g.admits)
	require.Len(t, g.asked, 1)
	require.Equal(t, id, who)
}

// TestRecordDenial: the default recorder appends AUTHZ_DENIED to HO3's
// ledger with who, what and where (never a token), and the refusal names
// that entry.
func TestRecordDenial(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the plane's checkpoint key
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "admin"}})
	require.NoError(t, err)
	var ran int
	var who Identity
	g := &fakeGuard{id: Identity{Subject: "mallory", Auth: auth.AuthToken, Claims: &auth.Claims{Subject: "mallory", Role: auth.RoleWorker}},
		deny: func(a Access) error {
			return Errorf(ExitDenied, "FIREWALL_DENIED", "%s may not %s on %s", a.Subject, a.Action, a.Tier)
		}}
	opts := Options{Env: &Env{Root: root, Token: "eyJ.secret.token"}, Guard: g}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"}, opts)
	require.Equal(t, ExitDenied, resp.Exit)
	require.Zero(t, ran)
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, "FIREWALL_DENIED", env.Error.Code)
	id, _ := env.Evidence["ledger_entry_id"].(string)
	require.NotEmpty(t, id, string(resp.Stdout))
	led, err := os.ReadFile(filepath.Join(root, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	require.NotContains(t, string(led), "secret", "never the token")
	lines := strings.Split(strings.TrimSpace(string(led)), "\n")
	e, err := ledger.ParseLine([]byte(lines[len(lines)-1]))
	require.NoError(t, err)
	require.Equal(t, "AUTHZ_DENIED", e.EventType)
	require.Equal(t, id, e.ID)
	require.Equal(t, "mallory", e.Actor)
	for k, v := range map[string]any{"subject": "mallory", "role": "worker", "action": "append", "tier": "ho3", "code": "FIREWALL_DENIED"} {
		require.Equal(t, v, e.Metadata[k], k)
	}
	require.NotContains(t, e.Metadata, "_auth", "written as a verified token's subject: no stamp")
}

// TestRecordAdmitRefusal: a caller the Guard does not admit is recorded in
// HO3 as "unauthenticated", with the Guard's code.
func TestRecordAdmitRefusal(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "admin"}})
	require.NoError(t, err)
	var ran int
	var who Identity
	g := &fakeGuard{admitErr: Errorf(ExitDenied, "AUTH_MISSING", "this plane requires a token: set CONTROL_PLANE_TOKEN")}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"},
		Options{Env: &Env{Root: root}, Guard: g})
	require.Equal(t, ExitDenied, resp.Exit)
	require.Zero(t, ran)
	led, err := os.ReadFile(filepath.Join(root, "ledger", "governance.jsonl"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(led)), "\n")
	e, err := ledger.ParseLine([]byte(lines[len(lines)-1]))
	require.NoError(t, err)
	require.Equal(t, "AUTHZ_DENIED", e.EventType)
	require.Equal(t, "unauthenticated", e.Actor)
	require.Equal(t, "unauthenticated", e.Metadata["subject"])
	require.Equal(t, "AUTH_MISSING", e.Metadata["code"])
	require.Equal(t, "", e.Metadata["role"])
	require.Equal(t, "off", e.Metadata["_auth"], "written without a verified token")
	require.Equal(t, "this plane requires a token: set CONTROL_PLANE_TOKEN", e.Reason)
}

// TestOSUserNotFromEnv: while auth is off the OS user is the actor stamped
// on entries. A process whose uid the system cannot name (a container
// without a passwd entry) was named by $USER, which the caller sets: now
// by its uid.
func TestOSUserNotFromEnv(t *testing.T) {
	t.Setenv("USER", "alice")
	name := osUserName(func() (*user.User, error) { return nil, errors.New("unknown userid") })
	require.Equal(t, "uid:"+strconv.Itoa(os.Geteuid()), name)
	require.Equal(t, "bob", osUserName(func() (*user.User, error) { return &user.User{Username: "bob"}, nil }))
}

// TestIdentityOptionCannotSkipTokens: Options.Identity is a caller an
// in-process server admitted. One without a token (auth off) was taken as
// is, even for a plane that requires tokens, and one that is neither a
// token nor auth off skipped the table as if auth were off. Now auth off
// is taken only where the Guard admits without a token, and anything else
// is refused.
func TestIdentityOptionCannotSkipTokens(t *testing.T) {
	rec := func(context.Context, *Call, Access, *Error) (string, int64, error) { return "", 0, nil }
	for _, c := range []struct {
		name  string
		guard Identity // what the Guard admits (a plane with tokens: a token identity)
		given Identity
		code  string
	}{
		{"auth off on a plane with tokens", Identity{Subject: "svc", Auth: auth.AuthToken, Claims: &auth.Claims{}}, Identity{Subject: "alice", Auth: auth.AuthOff}, "AUTH_MISSING"},
		{"no auth named", Identity{Subject: "me", Auth: auth.AuthOff}, Identity{Subject: "alice"}, "AUTH_INVALID"},
		{"an unknown auth", Identity{Subject: "me", Auth: auth.AuthOff}, Identity{Subject: "alice", Auth: "trusted"}, "AUTH_INVALID"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ran int
			var who Identity
			g := &fakeGuard{id: c.guard}
			resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"},
				Options{Env: &Env{}, Guard: g, Identity: c.given, Record: rec})
			require.Equal(t, ExitDenied, resp.Exit, string(resp.Stdout))
			env, err := resp.Envelope()
			require.NoError(t, err)
			require.Equal(t, c.code, env.Error.Code)
			require.Zero(t, ran)
		})
	}
	// Where the Guard admits without a token, the given identity is the caller.
	var ran int
	var who Identity
	g := &fakeGuard{id: Identity{Subject: "os-user", Auth: auth.AuthOff}}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"},
		Options{Env: &Env{}, Guard: g, Identity: Identity{Subject: "alice", Auth: auth.AuthOff}, Record: rec})
	require.Equal(t, ExitOK, resp.Exit, string(resp.Stdout))
	require.Equal(t, "alice", who.Subject)
}
