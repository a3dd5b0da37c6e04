package auth

import "context"

// Config is what a Guard reads from the environment, once per process.
type Config struct {
	// Token is CONTROL_PLANE_TOKEN: the token itself, or a path to a file
	// that holds it.
	Token string
	// Off is CONTROL_PLANE_AUTH=off: honoured only for the OS user that
	// owns the plane.
	Off bool
	// OSUser is the name of the OS user (the subject while auth is off).
	OSUser string
}

// Guard admits callers and judges their requests for the request path.
// SKELETON: admits the OS user and allows everything; the auth engine
// replaces this body.
type Guard struct{ cfg Config }

// NewGuard returns the Guard for a process's configuration.
func NewGuard(cfg Config) *Guard { return &Guard{cfg: cfg} }

// Admit establishes who calls, for the plane whose HO3 root is root (""
// when the request names no plane): the OS user while the plane has no
// auth (or none is named), the verified token's subject once cp-auth init
// has run. Its error is the refusal: AUTH_MISSING, AUTH_INVALID,
// AUTH_EXPIRED, AUTH_REVOKED (a coded error, see plane.Error).
func (g *Guard) Admit(ctx context.Context, root string) (Identity, error) {
	return Identity{Subject: g.cfg.OSUser, Auth: AuthOff}, nil
}

// Authorize judges one access by an admitted identity: the built-in table
// of DESIGN.md §8, then the plane's Cedar forbid policies. Its error is the
// refusal (FIREWALL_DENIED, POLICY_INVALID, PLANE_NOT_WRITABLE).
func (g *Guard) Authorize(ctx context.Context, id Identity, a Access) error { return nil }
