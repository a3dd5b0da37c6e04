package gatecmd

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/ledger"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func events(t *testing.T, root, tier string) []string {
	t.Helper()
	dir, err := plane.Dir(root, tier)
	require.NoError(t, err)
	l, _, err := plane.OpenLedger(dir, plane.ForReading, plane.Actor{})
	require.NoError(t, err)
	defer l.Close()
	var out []string
	require.NoError(t, l.Find(context.Background(), ledger.Query{}, func(e *ledger.Entry) bool {
		out = append(out, e.EventType)
		return true
	}))
	return out
}

// TestRecordIsAnAppend: cp-gate check and integrity are reads, but with
// --record they append GATE_PASSED or GATE_FAILED to the checked tier's
// ledger. A reader, an auditor or a worker (whose tokens append nowhere,
// or only to their own session) is refused that append and the refusal is
// recorded; the same request without --record still reads; an admin
// records.
func TestRecordIsAnAppend(t *testing.T) {
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "admin"}})
	require.NoError(t, err)
	as := func(role string, tiers ...string) cli.Options {
		c := &auth.Claims{Subject: role + "-1", Role: role, Tiers: tiers}
		if role == auth.RoleWorker {
			c.WorkOrder, c.Session = "WO-20261206-001", "SES-20261206-0123abcd"
		}
		return cli.Options{Env: &cli.Env{Root: root}, Identity: auth.Identity{Subject: c.Subject, Auth: auth.AuthToken, Claims: c}}
	}
	for _, c := range []struct {
		opts cli.Options
		verb string
		tier string
	}{
		{as(auth.RoleReader, "ho3"), "integrity", "ho3"},
		{as(auth.RoleAuditor, "ho3", "ho2", "ho1"), "check", "ho3"},
		{as(auth.RoleWorker, "ho1"), "check", "ho1"},
		{as(auth.RoleWorker, "ho1"), "integrity", "ho3"},
	} {
		name := c.opts.Identity.Claims.Role + " " + c.verb + " " + c.tier
		t.Run(name, func(t *testing.T) {
			req := cli.Request{"operation": c.verb, "plane": c.tier}
			if c.verb == "check" {
				req["gate"] = []any{"G6"}
			}
			resp := Dispatch(context.Background(), req, c.opts)
			require.Equal(t, cli.ExitOK, resp.Exit, "a read: %s", resp.Stdout)

			before := events(t, root, c.tier)
			req["record"] = true
			resp = Dispatch(context.Background(), req, c.opts)
			require.Equal(t, cli.ExitDenied, resp.Exit, string(resp.Stdout))
			env, err := resp.Envelope()
			require.NoError(t, err)
			require.Equal(t, "FIREWALL_DENIED", env.Error.Code)
			after := events(t, root, c.tier)
			require.NotContains(t, after[len(before):], "GATE_PASSED")
			ho3 := events(t, root, "ho3")
			require.Equal(t, "AUTHZ_DENIED", ho3[len(ho3)-1])
		})
	}
	resp := Dispatch(context.Background(), cli.Request{"operation": "integrity", "record": true}, as(auth.RoleAdmin, "ho3"))
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
	ho3 := events(t, root, "ho3")
	require.Equal(t, "GATE_PASSED", ho3[len(ho3)-1])
}
