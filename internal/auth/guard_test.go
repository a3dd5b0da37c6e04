package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/bootstrap"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/testenv"
	"github.com/control-plane/cp/pkg/ledger"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type testPlane struct {
	root, name string
	key        string // the auth key's path
}

// newPlane bootstraps a plane and, when withAuth, makes its auth key and
// trusts it for purpose auth (what cp-auth init does).
func newPlane(t testing.TB, withAuth bool) *testPlane {
	t.Helper()
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "plane")
	res, err := bootstrap.Plane(ctx, root, bootstrap.Options{Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	p := &testPlane{root: root, name: res.PlaneName}
	if !withAuth {
		return p
	}
	p.key, err = auth.DefaultKeyPath(p.name)
	require.NoError(t, err)
	vkey, _, err := auth.MakeKey(p.key, p.name, root)
	require.NoError(t, err)
	_, err = install.Trust(ctx, root, install.TrustOptions{Add: true, Key: vkey, Purposes: []string{"auth"}, Actor: plane.Actor{Name: "tester"}})
	require.NoError(t, err)
	return p
}

func (p *testPlane) mint(t testing.TB, c auth.Claims) string {
	t.Helper()
	priv, _, err := auth.LoadKey(p.key)
	require.NoError(t, err)
	if c.Audience == "" {
		c.Audience = p.name
	}
	if c.IssuedAt == 0 {
		c.IssuedAt = time.Now().Add(-time.Minute).Unix()
	}
	if c.ExpiresAt == 0 {
		c.ExpiresAt = time.Now().Add(time.Hour).Unix()
	}
	if c.ID == "" {
		c.ID = auth.NewID()
	}
	tok, err := auth.Mint(priv, c)
	require.NoError(t, err)
	return tok
}

func (p *testPlane) revoke(t testing.TB, r auth.Revocation) {
	t.Helper()
	require.NoError(t, r.Check())
	_, err := plane.Record(context.Background(), p.root, plane.Actor{Name: "tester"}, ledger.Draft{EventType: auth.EventRevoked, Decision: "REVOKED", Metadata: r.Metadata()})
	require.NoError(t, err)
}

func code(err error) string {
	if c, ok := err.(interface{ Code() string }); ok {
		return c.Code()
	}
	return ""
}

func TestGuardWithoutAuth(t *testing.T) {
	p := newPlane(t, false)
	g := auth.NewGuard(auth.Config{OSUser: "os-user"})
	id, err := g.Admit(context.Background(), p.root)
	require.NoError(t, err)
	require.Equal(t, auth.Identity{Subject: "os-user", Auth: auth.AuthOff}, id)
	require.NoError(t, g.Authorize(context.Background(), id, auth.Access{Root: p.root, Action: auth.ActionInstall, Tier: "ho3"}))
	id, err = g.Admit(context.Background(), "")
	require.NoError(t, err)
	require.Equal(t, auth.AuthOff, id.Auth)
}

func TestGuardTokens(t *testing.T) {
	ctx := context.Background()
	p := newPlane(t, true)
	admit := func(cfg auth.Config) (auth.Identity, error) { return auth.NewGuard(cfg).Admit(ctx, p.root) }

	_, err := admit(auth.Config{OSUser: "u"})
	require.Equal(t, auth.CodeMissing, code(err), "%v", err)

	tok := p.mint(t, auth.Claims{Subject: "w1", Role: auth.RoleWorker, Tiers: []string{"ho1"}, WorkOrder: "WO-1", Session: "SES-20261206-00000001"})
	id, err := admit(auth.Config{Token: tok})
	require.NoError(t, err)
	require.Equal(t, "w1", id.Subject)
	require.Equal(t, auth.AuthToken, id.Auth)

	// A token file works as well as the token.
	f := filepath.Join(t.TempDir(), "tok")
	require.NoError(t, os.WriteFile(f, []byte(tok+"\n"), 0o600))
	_, err = admit(auth.Config{Token: f})
	require.NoError(t, err)

	g := auth.NewGuard(auth.Config{Token: tok})
	id, err = g.Admit(ctx, p.root)
	require.NoError(t, err)
	require.NoError(t, g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho1", Session: "SES-20261206-00000001"}))
	err = g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho3"})
	require.Equal(t, auth.CodeDenied, code(err))
	err = g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionInstall, Tier: "ho3"})
	require.EqualError(t, err, "role worker may not install (HO3 only for admin and maintainer)")
	// A worker bound to WO-1 acting for WO-2.
	err = g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionWOStep, Tier: "ho1", WorkOrder: "WO-2"})
	require.Equal(t, auth.CodeDenied, code(err))

	// A token of another plane (same key name, other audience).
	other := p.mint(t, auth.Claims{Subject: "w1", Role: auth.RoleReader, Tiers: []string{"ho1"}, Audience: "plane-elsewhere"})
	_, err = admit(auth.Config{Token: other})
	require.Equal(t, auth.CodeInvalid, code(err))
	// Expired.
	old := p.mint(t, auth.Claims{Subject: "w1", Role: auth.RoleReader, Tiers: []string{"ho1"}, IssuedAt: time.Now().Add(-2 * time.Hour).Unix(), ExpiresAt: time.Now().Add(-time.Hour).Unix()})
	_, err = admit(auth.Config{Token: old})
	require.Equal(t, auth.CodeExpired, code(err))
}

func TestGuardRevocations(t *testing.T) {
	ctx := context.Background()
	p := newPlane(t, true)
	issued := time.Now().Add(-time.Hour).Unix()
	mk := func(sub, role, jti string) string {
		tiers := []string{"ho3", "ho2", "ho1"}
		c := auth.Claims{Subject: sub, Role: role, Tiers: tiers, ID: jti, IssuedAt: issued}
		return p.mint(t, c)
	}
	byJTI, bySub, byRole, byTime, kept := mk("a", auth.RoleReader, "tok-a"), mk("b", auth.RoleAuditor, "tok-b"), mk("c", auth.RoleMaintainer, "tok-c"), mk("d", auth.RoleAdmin, "tok-d"), mk("e", auth.RoleAdmin, "tok-e")
	for _, tok := range []string{byJTI, bySub, byRole, byTime, kept} {
		_, err := auth.NewGuard(auth.Config{Token: tok}).Admit(ctx, p.root)
		require.NoError(t, err)
	}
	p.revoke(t, auth.Revocation{JTI: "tok-a"})
	p.revoke(t, auth.Revocation{Subject: "b"})
	p.revoke(t, auth.Revocation{Role: auth.RoleMaintainer})
	for _, tok := range []string{byJTI, bySub, byRole} {
		_, err := auth.NewGuard(auth.Config{Token: tok}).Admit(ctx, p.root)
		require.Equal(t, auth.CodeRevoked, code(err), "%v", err)
	}
	_, err := auth.NewGuard(auth.Config{Token: byTime}).Admit(ctx, p.root)
	require.NoError(t, err)
	p.revoke(t, auth.Revocation{IssuedBefore: time.Now().UTC().Format(time.RFC3339)})
	for _, tok := range []string{byTime, kept} {
		_, err := auth.NewGuard(auth.Config{Token: tok}).Admit(ctx, p.root)
		require.Equal(t, auth.CodeRevoked, code(err), "%v", err)
	}
	// A token issued after the cut is admitted.
	_, err = auth.NewGuard(auth.Config{Token: p.mint(t, auth.Claims{Subject: "f", Role: auth.RoleAdmin, Tiers: []string{"ho3"}, IssuedAt: time.Now().Add(2 * time.Second).Unix()})}).Admit(ctx, p.root)
	require.NoError(t, err)
}

// Fail closed: a ledger the revocations cannot be read from refuses.
func TestGuardRevocationsUnreadable(t *testing.T) {
	p := newPlane(t, true)
	tok := p.mint(t, auth.Claims{Subject: "a", Role: auth.RoleAdmin, Tiers: []string{"ho3"}})
	tier, err := plane.ReadTier(p.root)
	require.NoError(t, err)
	lp := plane.LedgerPath(p.root, tier)
	require.NoError(t, os.Rename(lp, lp+".away"))
	require.NoError(t, os.Mkdir(lp, 0o700)) // a directory where the ledger was
	_, err = auth.NewGuard(auth.Config{Token: tok}).Admit(context.Background(), p.root)
	require.Error(t, err)
	require.NotEqual(t, "", code(err))
}

func TestGuardAuthOff(t *testing.T) {
	ctx := context.Background()
	p := newPlane(t, true)
	id, err := auth.NewGuard(auth.Config{Off: true, OSUser: "owner"}).Admit(ctx, p.root)
	require.NoError(t, err, "the plane's owner may turn auth off")
	require.Equal(t, auth.Identity{Subject: "owner", Auth: auth.AuthOff}, id)
	if os.Geteuid() != 0 {
		t.Skip("changing the plane's owner needs root")
	}
	require.NoError(t, os.Chown(p.root, 4242, 4242))
	_, err = auth.NewGuard(auth.Config{Off: true, OSUser: "owner"}).Admit(ctx, p.root)
	require.Equal(t, auth.CodeOffRefused, code(err), "%v", err)
}

func TestGuardPolicy(t *testing.T) {
	ctx := context.Background()
	p := newPlane(t, true)
	tok := p.mint(t, auth.Claims{Subject: "ops", Role: auth.RoleAdmin, Tiers: []string{"ho3", "ho2", "ho1"}})
	pol := filepath.Join(p.root, filepath.FromSlash(auth.PolicyFile))
	require.NoError(t, os.WriteFile(pol, []byte(`@id("no-ho2-appends") forbid (principal, action == Action::"append", resource == Tier::"ho2");`), 0o644))
	g := auth.NewGuard(auth.Config{Token: tok})
	id, err := g.Admit(ctx, p.root)
	require.NoError(t, err)
	require.NoError(t, g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho1"}))
	err = g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho2"})
	require.Equal(t, auth.CodeDenied, code(err))
	require.ErrorContains(t, err, "no-ho2-appends")

	// A policy file that is a link is not followed: mutating refused.
	require.NoError(t, os.Remove(pol))
	elsewhere := filepath.Join(t.TempDir(), "p.cedar")
	require.NoError(t, os.WriteFile(elsewhere, nil, 0o644))
	require.NoError(t, os.Symlink(elsewhere, pol))
	g = auth.NewGuard(auth.Config{Token: tok})
	err = g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho1"})
	require.Equal(t, auth.CodePolicy, code(err), "%v", err)
	require.NoError(t, g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionRead, Tier: "ho1"}))
}

// While auth is off, a mutating verb on a tier the OS user cannot write is
// refused before it acts; reads and the caller's own files are not.
func TestGuardNotWritable(t *testing.T) {
	ctx := context.Background()
	p := newPlane(t, false)
	g := auth.NewGuard(auth.Config{OSUser: "u"})
	id, err := g.Admit(ctx, p.root)
	require.NoError(t, err)
	ho1 := filepath.Join(p.root, "planes", "ho1")
	require.NoError(t, g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho1"}))
	if os.Geteuid() == 0 {
		// root writes anything: stand in a tier that is not there.
		require.NoError(t, os.Rename(ho1, ho1+".away"))
		defer os.Rename(ho1+".away", ho1)
	} else {
		require.NoError(t, os.Chmod(ho1, 0o555))
		defer os.Chmod(ho1, 0o755)
	}
	err = g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionAppend, Tier: "ho1", Tool: "cp-ledger", Verb: "append"})
	require.Equal(t, auth.CodeNotWritable, code(err), "%v", err)
	require.NoError(t, g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionRead, Tier: "ho1"}))
	require.NoError(t, g.Authorize(ctx, id, auth.Access{Root: p.root, Action: auth.ActionKeygen}))
}
