package pkgcmd

import (
	"context"
	"os"
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

// TestInitIntoThePlaneIsAuthoring: init, init-agent and init-config act
// on no plane when they write the caller's own files, but a tree written
// inside a plane (named plainly, through a symbolic link from outside, or
// by ".." through a link) is authoring into that plane: a reader or a
// worker is refused, nothing is written, and the refusal is recorded.
func TestInitIntoThePlaneIsAuthoring(t *testing.T) {
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "admin"}})
	require.NoError(t, err)
	mine := t.TempDir()
	link := filepath.Join(mine, "innocent")
	require.NoError(t, os.Symlink(filepath.Join(root, "planes", "ho1"), link))
	ho3Events := func() []string {
		l, _, err := plane.OpenLedger(root, plane.ForReading, plane.Actor{})
		require.NoError(t, err)
		defer l.Close()
		var out []string
		require.NoError(t, l.Find(context.Background(), ledger.Query{}, func(e *ledger.Entry) bool {
			out = append(out, e.EventType)
			return true
		}))
		return out
	}
	reader := &auth.Claims{Subject: "r1", Role: auth.RoleReader, Tiers: []string{"ho3", "ho2", "ho1"}}
	worker := &auth.Claims{Subject: "w1", Role: auth.RoleWorker, Tiers: []string{"ho1"}, WorkOrder: "WO-20261206-001", Session: "SES-20261206-0123abcd"}
	for i, out := range []string{filepath.Join(root, "evil"), filepath.Join(link, "evil"), link + "/../../config/evil",
		filepath.Join(root, "planes", "ho1", "sessions", "SES-20261206-0123abcd", "evil")} {
		for _, c := range []*auth.Claims{reader, worker} {
			for _, verb := range []string{"init", "init-agent", "init-config"} {
				opts := cli.Options{Env: &cli.Env{Root: root}, Identity: auth.Identity{Subject: c.Subject, Auth: auth.AuthToken, Claims: c}}
				req := cli.Request{"operation": verb, "package_id": "PKG-EVIL-001", "output": out}
				if verb != "init-config" {
					req["framework"] = "FMWK-KERNEL-001"
				}
				resp := Dispatch(context.Background(), req, opts)
				require.Equal(t, cli.ExitDenied, resp.Exit, "%d %s %s: %s", i, c.Role, verb, resp.Stdout)
				env, err := resp.Envelope()
				require.NoError(t, err)
				require.Equal(t, "FIREWALL_DENIED", env.Error.Code)
				require.NoDirExists(t, out)
				es := ho3Events()
				require.Equal(t, "AUTHZ_DENIED", es[len(es)-1])
			}
		}
	}
	// The caller's own directory acts on no plane.
	opts := cli.Options{Env: &cli.Env{Root: root}, Identity: auth.Identity{Subject: "r1", Auth: auth.AuthToken, Claims: reader}}
	resp := Dispatch(context.Background(), cli.Request{"operation": "init-config", "package_id": "PKG-MINE-001",
		"output": filepath.Join(mine, "conf")}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
}

// TestKeygenSignIntoThePlane: keygen and sign are admin and maintainer
// verbs of HO3, but with no plane named (no --root, no $CONTROL_PLANE, the
// working directory outside every plane) they ran unguarded: a reader
// could write a key into the plane, or replace a staged archive's .sig
// with its own. Where they write is judged instead.
func TestKeygenSignIntoThePlane(t *testing.T) {
	root := filepath.Join(t.TempDir(), "plane")
	_, err := bootstrap.Plane(context.Background(), root, bootstrap.Options{Actor: plane.Actor{Name: "admin"}})
	require.NoError(t, err)
	reader := &auth.Claims{Subject: "r1", Role: auth.RoleReader, Tiers: []string{"ho3"}}
	opts := cli.Options{Env: &cli.Env{}, Identity: auth.Identity{Subject: "r1", Auth: auth.AuthToken, Claims: reader}}
	for _, req := range []cli.Request{
		{"operation": "keygen", "name": "evil", "out": filepath.Join(root, "config")},
		{"operation": "sign", "archive": filepath.Join(root, "_staging", "PKG-X-001.tar.gz"), "key": "k"},
		{"operation": "stage", "package_id": "PKG-X-001", "src": t.TempDir(), "out": filepath.Join(root, "_staging")},
	} {
		resp := Dispatch(context.Background(), req, opts)
		require.Equal(t, cli.ExitDenied, resp.Exit, "%v: %s", req, resp.Stdout)
		env, err := resp.Envelope()
		require.NoError(t, err)
		require.Equal(t, "FIREWALL_DENIED", env.Error.Code, "%v", req)
	}
	require.NoFileExists(t, filepath.Join(root, "config", "evil.key"))
	// Outside every plane, with no plane named, a key is the caller's own.
	mine := t.TempDir()
	resp := Dispatch(context.Background(), cli.Request{"operation": "keygen", "name": "mine", "out": mine}, opts)
	require.Equal(t, cli.ExitOK, resp.Exit, string(resp.Stdout))
}
