package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/bootstrap"
)

// guardedTool is echoTool with its verbs declaring an action and counting
// the requests that reach them.
func guardedTool(ran *int, who *Identity) *Tool {
	t := echoTool()
	for _, v := range t.Verbs {
		run := v.Run
		v.Action, v.Tier = ActionAppend, TierHO3
		v.Run = func(ctx context.Context, c *Call, req Request) Outcome {
			*ran++
			*who = c.Identity
			return run(ctx, c, req)
		}
	}
	return t
}

func TestFirewallDenies(t *testing.T) {
	var ran int
	var who Identity
	var recorded []Access
	opts := Options{
		Identity: Identity{Subject: "mallory", Auth: "off"},
		Env:      &Env{},
		Firewall: func(ctx context.Context, a Access) error { return errors.New("not on this tier") },
		Record: func(ctx context.Context, c *Call, a Access, refusal *Error) (string, int64, error) {
			recorded = append(recorded, a)
			return "LED-0000000000000001", 7, nil
		},
	}
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"}, opts)
	require.Equal(t, ExitDenied, resp.Exit)
	require.Zero(t, ran, "a refused request never reaches its verb")
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, "error", env.Status)
	require.Equal(t, "FIREWALL_DENIED", env.Error.Code)
	require.Equal(t, "LED-0000000000000001", env.Evidence["ledger_entry_id"], "the refusal's record is its evidence")
	require.Equal(t, []Access{{Subject: "mallory", Action: ActionAppend, Tier: "ho3", Tool: "cp-test", Verb: "echo"}}, recorded)
	require.Contains(t, string(resp.Stderr), "cp-test: error: ")
}

func TestFirewallOncePerAccessInAStream(t *testing.T) {
	var ran, asked int
	var who Identity
	opts := Options{Identity: Identity{Subject: "alice", Auth: "off"}, Env: &Env{},
		Firewall: func(ctx context.Context, a Access) error { asked++; return nil }}
	var out, errb bytes.Buffer
	in := strings.NewReader(`{"name":"a"}` + "\n" + `{"name":"b"}` + "\n" + `{"name":"c"}` + "\n")
	code := RunWith(context.Background(), guardedTool(&ran, &who), opts, []string{"stream"}, in, &out, &errb)
	require.Equal(t, ExitOK, code, errb.String())
	require.Equal(t, 3, ran)
	require.Equal(t, 1, asked, "one decision per (subject, action, tier)")
	require.Equal(t, Identity{Subject: "alice", Auth: "off"}, who, "the call carries the identity resolved once")
}

func TestNoFirewallRunsTheVerb(t *testing.T) {
	var ran int
	var who Identity
	resp := Dispatch(context.Background(), guardedTool(&ran, &who), Request{"operation": "echo", "name": "x"}, Options{Env: &Env{}})
	require.Equal(t, ExitOK, resp.Exit, string(resp.Stderr))
	require.Equal(t, 1, ran)
	require.Equal(t, OSIdentity(), who, "auth off: the OS user asks")
	env, err := resp.Envelope()
	require.NoError(t, err)
	require.Equal(t, map[string]any{"name": "x"}, env.Result)
}

// TestRecordDenial: the default recorder appends AUTHZ_DENIED to HO3's
// ledger, and the refusal names that entry.
func TestRecordDenial(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // the plane's checkpoint key
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: "admin"})
	require.NoError(t, err)
	var ran int
	var who Identity
	opts := Options{Identity: Identity{Subject: "mallory", Auth: "off"}, Env: &Env{Root: root},
		Firewall: func(ctx context.Context, a Access) error {
			return Errorf(ExitDenied, "FIREWALL_DENIED", "%s may not %s on %s", a.Subject, a.Action, a.Tier)
		}}
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
	lines := strings.Split(strings.TrimSpace(string(led)), "\n")
	last := lines[len(lines)-1]
	require.Contains(t, last, `"event_type":"AUTHZ_DENIED"`)
	require.Contains(t, last, id)
	require.Contains(t, last, `"subject":"mallory"`)
}
