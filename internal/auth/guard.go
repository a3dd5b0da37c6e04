package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/trust"
)

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
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Guard admits callers and judges their requests for the request path.
// It caches, per plane root, the admitted identity and the plane's
// policies: a stream or an in-process server admits once.
type Guard struct {
	cfg    Config
	mu     sync.Mutex
	admits map[string]admitted
	policy map[string]*Policy
}

type admitted struct {
	id  Identity
	err error
	at  time.Time
}

// Recheck is how long an admission stands in one process (a stream, a
// server) before the token is verified again, revocations included: a
// token revoked while a stream runs is refused within it.
var Recheck = 5 * time.Second

// NewGuard returns the Guard for a process's configuration.
func NewGuard(cfg Config) *Guard {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg, admits: map[string]admitted{}, policy: map[string]*Policy{}}
}

// Admit establishes who calls, for the plane whose HO3 root is root (""
// when the request names no plane): the OS user while the plane has no
// auth (or none is named), the verified token's subject once cp-auth init
// has run. Its error is the refusal: AUTH_MISSING, AUTH_INVALID,
// AUTH_EXPIRED, AUTH_REVOKED, AUTH_OFF_REFUSED (an *Error), or the error
// of a trusted-keys file that cannot be read (fail closed).
//
// CONTROL_PLANE_AUTH=off (Config.Off) on an initialized plane is honoured
// only when the process's effective uid owns the plane's root directory;
// from anyone else it is AUTH_OFF_REFUSED.
func (g *Guard) Admit(ctx context.Context, root string) (Identity, error) {
	off := Identity{Subject: g.cfg.OSUser, Auth: AuthOff}
	if root == "" {
		return off, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.cfg.Now()
	if a, ok := g.admits[root]; ok && now.Sub(a.at) < Recheck {
		return a.id, a.err
	}
	id, err := g.admit(ctx, root)
	if err != nil {
		id = Identity{}
	}
	g.admits[root] = admitted{id, err, now}
	return id, err
}

func (g *Guard) admit(ctx context.Context, root string) (Identity, error) {
	off := Identity{Subject: g.cfg.OSUser, Auth: AuthOff}
	pubs, err := authKeysOf(root)
	if err != nil {
		return Identity{}, err
	}
	if len(pubs) == 0 {
		return off, nil
	}
	if g.cfg.Off {
		if err := ownsPlane(root); err != nil {
			return Identity{}, err
		}
		return off, nil
	}
	tok, err := ReadToken(g.cfg.Token)
	if err != nil {
		return Identity{}, err
	}
	c, err := verifyForPlane(ctx, root, tok, pubs, g.cfg.Now())
	if err != nil {
		return Identity{}, err
	}
	return Identity{Subject: c.Subject, Auth: AuthToken, Claims: c}, nil
}

// verifyForPlane verifies tok for the plane at root: against pubs, the
// keys it trusts for auth, with its plane_name as audience, then against
// the revocations in its HO3 ledger.
func verifyForPlane(ctx context.Context, root, tok string, pubs []ed25519.PublicKey, now time.Time) (*Claims, error) {
	t, err := plane.ReadTier(root)
	if err != nil {
		return nil, err
	}
	if t.PlaneName == "" {
		return nil, refuse(CodeInvalid, "the plane at %s has no plane_name: no token can be bound to it", root)
	}
	c, err := Verify(tok, pubs, t.PlaneName, now)
	if err != nil {
		return nil, err
	}
	if err := checkRevoked(ctx, root, t, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Initialized reports whether the plane at root trusts a key for purpose
// auth (cp-auth init has run). A plane whose trusted-keys file cannot
// mention purpose auth is answered from one read of the file, without
// parsing it: what a plane without auth pays.
func Initialized(root string) (bool, error) {
	pubs, err := authKeysOf(root)
	return len(pubs) > 0, err
}

// authKeysOf returns the keys the plane at root trusts for purpose auth:
// none (and no error) when it has no trusted-keys file or one that cannot
// mention purpose auth, which one read of the file tells.
func authKeysOf(root string) ([]ed25519.PublicKey, error) {
	b, err := regfile.ReadFile(filepath.Join(root, filepath.FromSlash(trust.File)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte(`"auth"`)) && !bytes.Contains(b, []byte(`\u`)) {
		return nil, nil
	}
	return authKeys(b, filepath.Join(root, filepath.FromSlash(trust.File))) // the bytes just read: one read of the file
}

// ownsPlane refuses CONTROL_PLANE_AUTH=off from a user that does not own
// the plane's root directory.
func ownsPlane(root string) error {
	st, err := os.Stat(root)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || int(sys.Uid) != os.Geteuid() {
		return refuse(CodeOffRefused, "CONTROL_PLANE_AUTH=off is honoured only for the OS user that owns the plane %s: present a token (CONTROL_PLANE_TOKEN)", root)
	}
	return nil
}

// ReadToken returns the token that spec (CONTROL_PLANE_TOKEN) holds: the
// token itself (three dot-separated segments starting "eyJ", the base64url
// of a JSON object's opening, and no slash), or the contents
// of the regular file it names, at most MaxTokenSize bytes. Empty:
// AUTH_MISSING.
func ReadToken(spec string) (string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return "", refuse(CodeMissing, "this plane requires a token (cp-auth init has run): set CONTROL_PLANE_TOKEN to a token or a file holding one")
	}
	if strings.HasPrefix(spec, "eyJ") && strings.Count(spec, ".") == 2 && !strings.ContainsAny(spec, "/\\") {
		return spec, nil
	}
	f, err := regfile.Open(spec)
	if err != nil {
		return "", refuse(CodeInvalid, "CONTROL_PLANE_TOKEN is neither a token nor a readable token file: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenSize+1))
	if err != nil {
		return "", refuse(CodeInvalid, "token file %s cannot be read: %v", spec, err)
	}
	if len(b) > MaxTokenSize {
		return "", refuse(CodeInvalid, "token file %s is longer than %d bytes", spec, MaxTokenSize)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", refuse(CodeMissing, "token file %s is empty", spec)
	}
	return tok, nil
}

// Authorize judges one access by an admitted identity: the built-in table
// of DESIGN.md §8, then the plane's Cedar forbid policies. Its error is the
// refusal (FIREWALL_DENIED, POLICY_INVALID, PLANE_NOT_WRITABLE).
//
// While auth is off (no token) the table and policies do not apply. With
// or without a token, a mutating action on a tier the OS user cannot write
// is refused before the verb acts: PLANE_NOT_WRITABLE (DESIGN.md §8's
// enforced setup: agents that hold tokens but no write access reach the
// plane through a process running as its owner).
func (g *Guard) Authorize(ctx context.Context, id Identity, a Access) error {
	if a.Root == "" {
		return nil
	}
	if id.Auth == AuthToken {
		// A token admitted once (a stream, a server) is judged again
		// when its time is up: past exp it allows nothing. (A verified
		// token always has an exp; claims without one were handed in by
		// an in-process caller that admitted them, Options.Identity.)
		if c := id.Claims; c != nil && c.ExpiresAt > 0 && g.cfg.Now().Add(-Leeway).Unix() > c.ExpiresAt {
			return refuse(CodeExpired, "token expired")
		}
		if err := Decide(id.Claims, a); err != nil {
			return err
		}
		if err := g.Policy(a.Root).Evaluate(Request{Claims: id.Claims, Access: a, Now: g.cfg.Now()}); err != nil {
			return err
		}
	}
	if a.Action.Mutating() {
		return writable(a)
	}
	return nil
}

// Policy returns the plane's policies, loaded once per Guard.
func (g *Guard) Policy(root string) *Policy {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.policy[root]
	if !ok {
		p = LoadPolicy(root)
		g.policy[root] = p
	}
	return p
}

// writable refuses a mutating access to a tier directory the process
// cannot write.
func writable(a Access) error {
	if a.Action == ActionAuthor && a.Tier == "" || a.Action == ActionSign || a.Action == ActionKeygen {
		return nil // the caller's own files
	}
	t := a.Tier
	if t == "" {
		t = "ho3"
	}
	dir, err := plane.Dir(a.Root, t)
	if err != nil {
		return refuse(CodeDenied, "%v", err)
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return refuse(CodeNotWritable, "%s %s: the OS user cannot write %s (%v): a mutating verb is refused before it acts; reach the plane through a process running as its owner", a.Tool, a.Verb, dir, err)
	}
	return nil
}
