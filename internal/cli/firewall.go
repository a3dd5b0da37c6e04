package cli

import (
	"context"
	"errors"
	"os"
	"os/user"
	"strconv"
	"sync"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Action is what a verb does, as the firewall judges it (DESIGN.md §8):
// every verb declares one, and capabilities.json lists it.
type Action string

// Actions of DESIGN.md §8's table that the four tools' verbs declare.
const (
	ActionRead       Action = "read"       // show, verify, prove, check, integrity, versions, ...
	ActionAppend     Action = "append"     // a tier's ledger grows by the request's entries
	ActionAuthor     Action = "author"     // package sources and archives in the author's own directory
	ActionInstall    Action = "install"    // a package into the plane
	ActionRollback   Action = "rollback"   // the plane back to a checkpoint
	ActionCheckpoint Action = "checkpoint" // a version point, or a ledger's signed checkpoint
	ActionRecover    Action = "recover"    // an interrupted install finished or undone
	ActionBootstrap  Action = "bootstrap"  // a new plane
	ActionRegister   Action = "register"   // a framework or spec into the registries
	ActionSign       Action = "sign"       // a package archive signed
	ActionKeygen     Action = "keygen"     // a signing key made
	ActionTrust      Action = "trust"      // the plane's trusted keys changed
)

// Tiers a verb declares (Verb.Tier).
const (
	TierHO3 = "ho3" // the plane as a whole, through its HO3 root
	// TierPlane is the tier the request names: its "plane" field, else the
	// tier --root names (a request that names a ledger file by path acts
	// on no tier).
	TierPlane = "plane"
	// TierNone acts on no plane: files in the caller's own directories.
	TierNone = "none"
)

// Identity is who asks, resolved once per request path, before any verb
// runs, and handed to libraries through their options (the Actor stamped on
// ledger entries and receipts).
type Identity struct {
	// Subject is the OS user while auth is off; a token's subject once
	// cp-auth issues tokens.
	Subject string
	// Auth is how the subject was established: "off" (the OS user, no
	// token) today.
	Auth string
}

// osUser is the OS user, looked up once per process: a stream or an
// in-process server resolves it once, not per request.
var osUser = sync.OnceValue(func() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "uid:" + strconv.Itoa(os.Getuid())
})

// OSIdentity is the caller while auth is off: the OS user.
func OSIdentity() Identity { return Identity{Subject: osUser(), Auth: "off"} }

// Env is the Control Plane's environment, read once per request path onto
// the Call; libraries get these values through their options and never
// read the environment themselves.
type Env struct {
	// Root is $CONTROL_PLANE: the plane root when --root is not given.
	Root string
	// AllowUnsigned is CONTROL_PLANE_ALLOW_UNSIGNED=1: the package gates
	// accept an unsigned archive.
	AllowUnsigned bool
	// VerifyKey is CONTROL_PLANE_VERIFY_KEY: one more trusted verifier key
	// (package gates) or the checkpoint key a verify requires.
	VerifyKey string
	// SigningKey is CONTROL_PLANE_SIGNING_KEY: the signer key (or its path)
	// when a verb's key flag is not given.
	SigningKey string
}

// ReadEnv reads the Control Plane variables of the process environment.
func ReadEnv() Env {
	return Env{
		Root:          os.Getenv("CONTROL_PLANE"),
		AllowUnsigned: os.Getenv("CONTROL_PLANE_ALLOW_UNSIGNED") == "1",
		VerifyKey:     os.Getenv("CONTROL_PLANE_VERIFY_KEY"),
		SigningKey:    os.Getenv("CONTROL_PLANE_SIGNING_KEY"),
	}
}

// Access is one request as the firewall judges it: who, doing what, where.
type Access struct {
	Subject string
	Action  Action
	Tier    string // "ho3", "ho2", "ho1", or "" for no tier
	Tool    string
	Verb    string
}

// Firewall decides whether an access is allowed: nil allows it; an error
// refuses it (its Code, if it has one, is the refusal's: FIREWALL_DENIED,
// AUTH_MISSING, ...; without one the refusal is FIREWALL_DENIED).
type Firewall func(ctx context.Context, a Access) error

// DenialRecorder records a refusal (DESIGN.md §8: AUTHZ_DENIED in HO3's
// ledger) and returns the entry that holds it. The request path calls it,
// and only it: verbs never record refusals of the firewall.
type DenialRecorder func(ctx context.Context, c *Call, a Access, refusal *Error) (id string, seq int64, err error)

// Options configure a request path. The zero value is a process's: the OS
// user, the process environment, auth off (no firewall).
type Options struct {
	// Identity is the caller; zero: OSIdentity.
	Identity Identity
	// Env is the Control Plane environment; nil: ReadEnv.
	Env *Env
	// Firewall judges each request before its verb runs; nil is auth off,
	// which allows everything and costs nothing.
	Firewall Firewall
	// Record records a refusal; nil: RecordDenial.
	Record DenialRecorder
}

// RecordDenial appends AUTHZ_DENIED (subject, action, tier, reason; never a
// token) to the HO3 ledger of the plane the call names. A refusal of a
// request that names no plane is not recorded.
func RecordDenial(ctx context.Context, c *Call, a Access, refusal *Error) (string, int64, error) {
	root, err := c.Root()
	if err != nil {
		return "", 0, nil // no plane to record in: the refusal stands unrecorded
	}
	e, err := plane.Record(ctx, root, a.Subject, ledger.Draft{EventType: "AUTHZ_DENIED", SubmissionID: a.Tool + " " + a.Verb,
		Decision: "DENIED", Reason: refusal.Message, Metadata: map[string]any{
			"subject": a.Subject, "action": string(a.Action), "tier": a.Tier, "code": refusal.Code, "_auth": c.Identity.Auth}})
	if err != nil {
		return "", 0, err
	}
	return e.ID, e.Seq, nil
}

// tierOf resolves the tier a request acts on, from the verb's declaration.
func (c *Call) tierOf(req Request) (string, error) {
	switch c.Verb.Tier {
	case TierPlane:
		if p := req.String("plane"); p != "" {
			return p, nil
		}
		if req.String("ledger") != "" {
			return "", nil
		}
		if _, err := c.Root(); err != nil {
			return "", err
		}
		return c.RootPlane(), nil
	case TierNone:
		return "", nil
	}
	return c.Verb.Tier, nil
}

// authorize runs the firewall over one request, once per (subject, action,
// tier) in a run, and records a refusal the first time it is met. It
// returns the refusal as the request's outcome, or nil.
func (r *runner) authorize(ctx context.Context, req Request) *Outcome {
	c := r.call
	tier, err := c.tierOf(req)
	if err != nil {
		return &Outcome{Err: err}
	}
	a := Access{Subject: c.Identity.Subject, Action: c.Verb.Action, Tier: tier, Tool: c.Tool.Name, Verb: c.Verb.Name}
	if o, ok := r.decisions[a]; ok {
		return o
	}
	var o *Outcome
	if err := r.opts.Firewall(ctx, a); err != nil {
		refusal := AsError(err)
		var coded interface{ Code() string }
		if !errors.As(err, &coded) {
			refusal = Errorf(ExitDenied, "FIREWALL_DENIED", "%s %s: %v", c.Tool.Name, c.Verb.Name, err)
		}
		if refusal.Exit != ExitDenied {
			refusal.Exit = ExitDenied // a refusal is a negative verdict, whatever its code
		}
		o = &Outcome{Err: refusal}
		record := r.opts.Record
		if record == nil {
			record = RecordDenial
		}
		id, seq, rerr := record(ctx, c, a, refusal)
		if rerr != nil {
			c.Warnf("recording the refusal: %v", rerr)
		}
		o.LedgerEntryID, o.Seq = id, seq
	}
	if r.decisions == nil {
		r.decisions = map[Access]*Outcome{}
	}
	r.decisions[a] = o
	return o
}
