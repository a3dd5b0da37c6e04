package auth

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Issuer loads the auth signing key at keyPath and returns it if the plane
// at root trusts it for auth (AUTH_KEY_UNAVAILABLE otherwise): a token the
// plane would not accept is never minted. A caller that must not act
// unless it can mint (cp-wo start --mint-token) asks it first.
func Issuer(root, keyPath string) (ed25519.PrivateKey, error) {
	priv, kname, err := LoadKey(keyPath)
	if err != nil {
		return nil, err
	}
	pubs, err := TrustedKeys(root)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(pubs, func(p ed25519.PublicKey) bool { return p.Equal(priv.Public()) }) {
		return nil, refuse(CodeKey, "key %s (%s) is not trusted for auth on this plane: its tokens would be refused", keyPath, kname)
	}
	return priv, nil
}

// Issue mints a token with claims c, signed by priv (from Issuer), and
// records TOKEN_ISSUED in the HO3 ledger of the plane at root (jti, sub,
// role, tiers, exp, and wo and session when set; never the token). It is
// the one path a token is made by (cp-auth init and token, cp-wo start
// --mint-token). The claims must pass Claims.Check.
//
// opID, when set, is the operation the mint belongs to (init's trust
// change): the entry carries it, so the gates count it as part of it.
func Issue(ctx context.Context, root string, actor plane.Actor, priv ed25519.PrivateKey, c Claims, opID string) (string, ledger.Entry, error) {
	if err := c.Check(); err != nil {
		return "", ledger.Entry{}, err
	}
	tok, err := Mint(priv, c)
	if err != nil {
		return "", ledger.Entry{}, err
	}
	m := map[string]any{"jti": c.ID, "sub": c.Subject, "role": c.Role, "tiers": c.Tiers,
		"exp": time.Unix(c.ExpiresAt, 0).UTC().Format(time.RFC3339)}
	if c.WorkOrder != "" {
		m["wo"] = c.WorkOrder
	}
	if c.Session != "" {
		m["session"] = c.Session
	}
	if opID != "" {
		m["op_id"] = opID
	}
	e, err := plane.Record(ctx, root, actor, ledger.Draft{EventType: EventIssued, SubmissionID: c.ID, Decision: "ISSUED",
		Reason: fmt.Sprintf("token for %s, role %s, tiers %s", c.Subject, c.Role, strings.Join(c.Tiers, ",")), Metadata: m})
	if err != nil {
		return "", ledger.Entry{}, err
	}
	return tok, e, nil
}
