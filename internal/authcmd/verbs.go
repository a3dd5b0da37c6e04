package authcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/install"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// DefaultInitTTL is the first admin token's lifetime.
const DefaultInitTTL = 24 * time.Hour

// planeName returns the plane_name of the plane at root: the audience of
// its tokens. A plane without one cannot have auth.
func planeName(root string) (string, error) {
	t, err := plane.ReadTier(root)
	if err != nil {
		return "", err
	}
	if t.PlaneName == "" {
		return "", cli.Errorf(cli.ExitDenied, "PLANE_NAME_MISSING", "the plane at %s has no plane_name: tokens are bound to one (bootstrap the plane with cp-install bootstrap)", root)
	}
	// A directory holding a copy of the plane's tier.json is not the
	// plane: no key is made for it, no token minted with the plane's key.
	if err := plane.KeyRoot(t.PlaneName, root); err != nil {
		return "", err
	}
	return t.PlaneName, nil
}

func duration(req cli.Request, def time.Duration) (time.Duration, error) {
	s := req.String("ttl")
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, cli.Usagef("--ttl %q: want a positive duration (90m, 1h, 24h)", s)
	}
	return d, nil
}

// TokenResult is what init and token answer.
type TokenResult struct {
	Token  string      `json:"token"`
	Claims auth.Claims `json:"claims"`
	// KeyFile and VerifierKey: init only.
	KeyFile     string `json:"key_file,omitempty"`
	VerifierKey string `json:"verifier_key,omitempty"`
	// TrustVersion is the kernel release that carries the trust (init).
	TrustVersion string `json:"trust_version,omitempty"`
}

func initVerb(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	name, err := planeName(root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	ttl, err := duration(req, DefaultInitTTL)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	sub := req.String("sub")
	if sub == "" {
		sub = c.Identity.Subject
	}
	on, err := auth.Initialized(root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if on {
		return cli.Outcome{Err: cli.Errorf(cli.ExitDenied, "AUTH_INITIALIZED", "the plane at %s already trusts a key for auth", root).
			WithHint("mint tokens with cp-auth token (an admin token, or CONTROL_PLANE_AUTH=off as the plane's owner); to replace the key, trust a new one with cp-install trust add --purpose auth and remove the old")}
	}
	keyPath := req.String("key_out")
	if keyPath == "" {
		if keyPath, err = auth.DefaultKeyPath(name); err != nil {
			return cli.Outcome{Err: err}
		}
	}
	if err := plane.CheckRecord(ctx, root, c.Actor()); err != nil {
		return cli.Outcome{Err: err}
	}
	vkey, undo, err := auth.MakeKey(keyPath, name, root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	c.Logf("auth key written to %s", keyPath)
	tr, err := install.Trust(ctx, root, install.TrustOptions{Add: true, Key: vkey, Purposes: []string{"auth"}, Actor: c.Actor()})
	if err != nil {
		undo()
		return cli.Outcome{Err: err}
	}
	now := time.Now()
	cl := auth.Claims{Subject: sub, Role: auth.RoleAdmin, Tiers: []string{"ho3", "ho2", "ho1"}, Audience: name,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), ID: auth.NewID()}
	opID := "" // the first token belongs to init's trust change
	if tr.Kernel != nil {
		opID = tr.Kernel.OpID
	}
	priv, err := auth.Issuer(root, keyPath)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	tok, e, err := auth.Issue(ctx, root, c.Actor(), priv, cl, opID)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: &TokenResult{Token: tok, Claims: cl, KeyFile: keyPath, VerifierKey: vkey, TrustVersion: tr.Version},
		LedgerEntryID: e.ID, Seq: e.Seq}
}

func initText(w io.Writer, result any) error {
	r := result.(*TokenResult)
	_, err := fmt.Fprintf(w, "auth initialized: key %s (trusted for auth, kernel %s)\nadmin token for %s, valid until %s:\n%s\n",
		r.KeyFile, r.TrustVersion, r.Claims.Subject, time.Unix(r.Claims.ExpiresAt, 0).UTC().Format(time.RFC3339), r.Token)
	return err
}

func token(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	name, err := planeName(root)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	ttl, err := duration(req, time.Hour)
	if err != nil {
		return cli.Outcome{Err: err}
	}
	now := time.Now()
	cl := auth.Claims{Subject: req.String("sub"), Role: req.String("role"), Tiers: req.Strings("tiers"), Audience: name,
		IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix(), ID: auth.NewID(), WorkOrder: req.String("wo"), Session: req.String("session")}
	if err := cl.Check(); err != nil {
		return cli.Outcome{Err: cli.Usagef("token: %v", err)}
	}
	keyPath := req.String("key")
	if keyPath == "" {
		if keyPath, err = auth.DefaultKeyPath(name); err != nil {
			return cli.Outcome{Err: err}
		}
	}
	// A token the plane would not accept is never minted (auth.Issue: the
	// key must be one it trusts for auth).
	priv, err := auth.Issuer(root, keyPath)
	if err != nil {
		return cli.Outcome{Err: withKeyHint(err)}
	}
	tok, e, err := auth.Issue(ctx, root, c.Actor(), priv, cl, "")
	if err != nil {
		return cli.Outcome{Err: err}
	}
	return cli.Outcome{Result: &TokenResult{Token: tok, Claims: cl}, LedgerEntryID: e.ID, Seq: e.Seq}
}

// tokenText is the token alone on a line, so that
// CONTROL_PLANE_TOKEN=$(cp-auth token ... --format text) works.
func tokenText(w io.Writer, result any) error {
	_, err := fmt.Fprintln(w, result.(*TokenResult).Token)
	return err
}

// WhoamiResult is whoami's answer.
type WhoamiResult struct {
	Subject string           `json:"subject"`
	Auth    string           `json:"auth"`
	Claims  *auth.Claims     `json:"claims,omitempty"`
	Allows  []auth.Allowance `json:"allows,omitempty"`
	Note    string           `json:"note,omitempty"`
}

func whoami(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	// The request path admitted the caller before this verb ran.
	id := c.Identity
	var allows []auth.Allowance
	if id.Claims != nil {
		allows = auth.Allows(id.Claims)
	}
	r := &WhoamiResult{Subject: id.Subject, Auth: id.Auth, Claims: id.Claims, Allows: allows}
	if id.Auth == auth.AuthOff {
		on, _ := auth.Initialized(root)
		r.Note = "auth is off: this plane has no auth (cp-auth init never ran); the OS user may do anything its file permissions allow"
		if on {
			r.Note = "auth is off: CONTROL_PLANE_AUTH=off by the plane's owner; every entry written is stamped _auth off"
		}
	}
	return cli.Outcome{Result: r}
}

func whoamiText(w io.Writer, result any) error {
	r := result.(*WhoamiResult)
	if r.Claims == nil {
		_, err := fmt.Fprintf(w, "%s (%s)\n", r.Subject, r.Note)
		return err
	}
	cl := r.Claims
	fmt.Fprintf(w, "%s: role %s, tiers %s, expires %s, jti %s\n", cl.Subject, cl.Role, strings.Join(cl.Tiers, ","),
		time.Unix(cl.ExpiresAt, 0).UTC().Format(time.RFC3339), cl.ID)
	if cl.WorkOrder != "" || cl.Session != "" {
		fmt.Fprintf(w, "work order %s, session %s\n", cl.WorkOrder, cl.Session)
	}
	var denied []string
	for _, a := range r.Allows {
		if len(a.Tiers) == 0 {
			denied = append(denied, string(a.Action))
			continue
		}
		if _, err := fmt.Fprintf(w, "  %-11s %s\n", a.Action, strings.Join(a.Tiers, ",")); err != nil {
			return err
		}
	}
	if len(denied) > 0 {
		_, err := fmt.Fprintf(w, "  not allowed: %s\n", strings.Join(denied, " "))
		return err
	}
	return nil
}

// RevokeResult is revoke's answer.
type RevokeResult struct {
	Revoked auth.Revocation `json:"revoked"`
}

func revoke(ctx context.Context, c *cli.Call, req cli.Request) cli.Outcome {
	root, err := c.Root()
	if err != nil {
		return cli.Outcome{Err: err}
	}
	r := auth.Revocation{JTI: req.String("jti"), Subject: req.String("sub"), Role: req.String("role"), IssuedBefore: req.String("issued_before")}
	if err := r.Check(); err != nil {
		return cli.Outcome{Err: cli.Usagef("revoke: %v", err)}
	}
	if r.Role != "" && !slices.Contains(auth.Roles, r.Role) {
		return cli.Outcome{Err: cli.Usagef("revoke: role %q is not one of %s", r.Role, strings.Join(auth.Roles, ", "))}
	}
	if r.IssuedBefore != "" {
		t, _ := time.Parse(time.RFC3339, r.IssuedBefore)
		r.IssuedBefore = t.UTC().Format(time.RFC3339)
	}
	e, err := plane.Record(ctx, root, c.Actor(), ledger.Draft{EventType: auth.EventRevoked, Decision: "REVOKED",
		Reason: "revoked: " + describe(r), Metadata: r.Metadata()})
	if err != nil {
		return cli.Outcome{Err: err}
	}
	if r.Role == auth.RoleAdmin || r.IssuedBefore != "" {
		c.Warnf("every admin token this revokes is refused from now on: mint a new one as the plane's owner (CONTROL_PLANE_AUTH=off cp-auth token ...)")
	}
	return cli.Outcome{Result: &RevokeResult{Revoked: r}, LedgerEntryID: e.ID, Seq: e.Seq}
}

func describe(r auth.Revocation) string {
	switch {
	case r.JTI != "":
		return "token " + r.JTI
	case r.Subject != "":
		return "every token of subject " + r.Subject
	case r.Role != "":
		return "every token of role " + r.Role
	}
	return "every token issued before " + r.IssuedBefore
}

func revokeText(w io.Writer, result any) error {
	_, err := fmt.Fprintf(w, "revoked %s\n", describe(result.(*RevokeResult).Revoked))
	return err
}

// withKeyHint adds what to do to a key the plane does not trust for auth.
func withKeyHint(err error) error {
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Code() == auth.CodeKey {
		return cli.AsError(err).WithHint("run cp-auth init first, or trust the key: cp-install trust add --purpose auth PUB")
	}
	return err
}
