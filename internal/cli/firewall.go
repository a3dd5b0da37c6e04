package cli

import (
	"context"
	"errors"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/pkg/ledger"
)

// Action is what a verb does, as the firewall judges it (DESIGN.md §8):
// every verb declares one, and capabilities.json lists it.
type Action = auth.Action

// Actions of DESIGN.md §8's table that verbs declare (auth's, by their
// request-path names).
const (
	ActionRead       = auth.ActionRead
	ActionAppend     = auth.ActionAppend
	ActionAuthor     = auth.ActionAuthor
	ActionInstall    = auth.ActionInstall
	ActionRollback   = auth.ActionRollback
	ActionCheckpoint = auth.ActionCheckpoint
	ActionRecover    = auth.ActionRecover
	ActionBootstrap  = auth.ActionBootstrap
	ActionRegister   = auth.ActionRegister
	ActionSign       = auth.ActionSign
	ActionKeygen     = auth.ActionKeygen
	ActionTrust      = auth.ActionTrust
	ActionToken      = auth.ActionToken
	ActionRevoke     = auth.ActionRevoke
	ActionWOCreate   = auth.ActionWOCreate
	ActionWOCancel   = auth.ActionWOCancel
	ActionWOApprove  = auth.ActionWOApprove
	ActionWOStep     = auth.ActionWOStep
	ActionRoute      = auth.ActionRoute
	ActionLLM        = auth.ActionLLM
	ActionMigrate    = auth.ActionMigrate
)

// Tiers a verb declares (Verb.Tier).
const (
	TierHO3 = "ho3" // the plane as a whole, through its HO3 root
	// TierPlane is the tier the request names: its "plane" field, else the
	// tier --root names; a verb whose request may name a ledger file by
	// path says which tier that file belongs to through Verb.Scope.
	TierPlane = "plane"
	// TierNone acts on no plane: files in the caller's own directories.
	TierNone = "none"
)

// Identity is who asks (auth.Identity), established once per request path
// by the Guard before any verb runs, and handed to libraries through their
// options (the actor stamped on ledger entries and receipts).
type Identity = auth.Identity

// Access is one request as the firewall judges it (auth.Access).
type Access = auth.Access

// osUser is the OS user, looked up once per process: a stream or an
// in-process server resolves it once, not per request.
var osUser = sync.OnceValue(func() string { return osUserName(user.Current) })

// osUserName is the name of the process's user, as the system knows it,
// else its uid: never $USER, which any caller sets, while this name is
// stamped as the actor of every entry written with auth off (the evidence
// of a bypass names who made it).
func osUserName(current func() (*user.User, error)) string {
	if u, err := current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid:" + strconv.Itoa(os.Geteuid())
}

// OSIdentity is the caller while auth is off: the OS user.
func OSIdentity() Identity { return Identity{Subject: osUser(), Auth: auth.AuthOff} }

// Actor is the identity as libraries stamp it: its subject on entries and
// receipts, and metadata._auth "off" on every entry written without a
// verified token (DESIGN.md §8).
func (c *Call) Actor() plane.Actor {
	return plane.Actor{Name: c.Identity.Subject, AuthOff: c.Identity.Auth != auth.AuthToken}
}

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
	// Token is CONTROL_PLANE_TOKEN: the caller's token, or a path to it.
	Token string
	// AuthOff is CONTROL_PLANE_AUTH=off: no token, honoured (by the Guard)
	// only for the OS user that owns the plane.
	AuthOff bool
}

// ReadEnv reads the Control Plane variables of the process environment.
func ReadEnv() Env {
	return Env{
		Root:          os.Getenv("CONTROL_PLANE"),
		AllowUnsigned: os.Getenv("CONTROL_PLANE_ALLOW_UNSIGNED") == "1",
		VerifyKey:     os.Getenv("CONTROL_PLANE_VERIFY_KEY"),
		SigningKey:    os.Getenv("CONTROL_PLANE_SIGNING_KEY"),
		Token:         os.Getenv("CONTROL_PLANE_TOKEN"),
		AuthOff:       os.Getenv("CONTROL_PLANE_AUTH") == "off",
	}
}

// Guard admits callers and judges their requests (*auth.Guard is the
// process's). Its errors are refusals: a coded error's Code is the
// refusal's (AUTH_*, FIREWALL_DENIED, POLICY_INVALID, PLANE_NOT_WRITABLE);
// an uncoded one is FIREWALL_DENIED.
type Guard interface {
	// Admit establishes who calls, for the plane whose HO3 root is root
	// ("" when the request names none).
	Admit(ctx context.Context, root string) (auth.Identity, error)
	// Authorize judges one access by an admitted identity.
	Authorize(ctx context.Context, id auth.Identity, a auth.Access) error
}

// DenialRecorder records a refusal (DESIGN.md §8: AUTHZ_DENIED in HO3's
// ledger) and returns the entry that holds it. The request path calls it,
// and only it: verbs never record refusals of the firewall.
type DenialRecorder func(ctx context.Context, c *Call, a Access, refusal *Error) (id string, seq int64, err error)

// Options configure a request path. The zero value is a process's: the
// process environment and its Guard (auth.NewGuard over it).
type Options struct {
	// Identity, if set, is the caller, taken as admitted (a test, a server
	// that authenticated its client); the Guard still authorizes each
	// request.
	Identity Identity
	// Env is the Control Plane environment; nil: ReadEnv.
	Env *Env
	// Guard admits the caller and judges each request before its verb
	// runs; nil: auth.NewGuard over Env.
	Guard Guard
	// Record records a refusal; nil: RecordDenial.
	Record DenialRecorder
}

// unauthenticated is the subject of a refusal met before anyone was
// admitted.
const unauthenticated = "unauthenticated"

// RecordDenial appends AUTHZ_DENIED (subject, role, action, tier, session,
// reason, code; never a token) to the HO3 ledger of the plane a.Root. A
// refusal of a request that names no plane is not recorded.
func RecordDenial(ctx context.Context, c *Call, a Access, refusal *Error) (string, int64, error) {
	if a.Root == "" {
		return "", 0, nil // no plane to record in: the refusal stands unrecorded
	}
	role := ""
	if c.Identity.Claims != nil {
		role = c.Identity.Claims.Role
	}
	meta := map[string]any{"subject": a.Subject, "role": role, "action": string(a.Action), "tier": a.Tier,
		"code": refusal.Code}
	if a.Session != "" {
		meta["session_id"] = a.Session
	}
	if a.WorkOrder != "" {
		meta["work_order_id"] = a.WorkOrder
	}
	if a.EventType != "" {
		meta["event_type"] = a.EventType
	}
	actor := plane.Actor{Name: a.Subject, AuthOff: c.Identity.Auth != auth.AuthToken}
	e, err := plane.Record(ctx, a.Root, actor, ledger.Draft{EventType: "AUTHZ_DENIED", SubmissionID: a.Tool + " " + a.Verb,
		Decision: "DENIED", Reason: refusal.Message, Metadata: meta})
	if err != nil {
		return "", 0, err
	}
	return e.ID, e.Seq, nil
}

// scope is what a request acts on, for the firewall: the HO3 root of its
// plane ("" for none), its tier and HO1 session.
type scope struct{ root, tier, session string }

// scopeOf resolves what a request acts on, from the verb's declaration: its
// Scope if it has one (a request naming a ledger file by path is judged by
// the plane and tier the file is in), else its Tier.
func (c *Call) scopeOf(req Request) (scope, error) {
	if c.Verb.Scope != nil {
		root, tier, session, err := c.Verb.Scope(c, req)
		return scope{root: root, tier: tier, session: session}, err
	}
	switch c.Verb.Tier {
	case TierNone:
		return scope{}, nil
	case TierPlane:
		root, err := c.Root()
		if err != nil {
			return scope{}, err
		}
		tier := req.String("plane")
		if tier == "" {
			tier = c.RootPlane()
		}
		return scope{root: root, tier: tier, session: req.String("session_id")}, nil
	}
	// A verb of the whole plane: a plane that cannot be found is the
	// verb's own error to report (bootstrap makes one); it has nothing
	// the firewall could guard.
	root, err := c.Root()
	if err != nil {
		root = ""
	}
	return scope{root: root, tier: c.Verb.Tier}, nil
}

// admission is the Guard's answer to Admit for one plane: who calls, or
// the refusal.
type admission struct {
	id  Identity
	err error
	at  time.Time // when: an admission stands auth.Recheck, then is made again
}

// admit establishes the caller for the plane at root, once per plane in a
// run: Options.Identity when given (taken as admitted), else the Guard's
// Admit.
func (r *runner) admit(ctx context.Context, root string) admission {
	if a, ok := r.admitted[root]; ok && time.Since(a.at) < auth.Recheck {
		return a
	}
	a := admission{at: time.Now()}
	switch id := r.opts.Identity; {
	case id == (Identity{}):
		a.id, a.err = r.guard.Admit(ctx, root)
	case id.Auth == auth.AuthToken:
		a.id = id // the table refuses a token identity without claims
	case id.Auth == auth.AuthOff:
		// An identity without a token is taken only where the Guard
		// itself admits without one (a plane without auth, or auth off
		// by the plane's owner): an in-process caller cannot skip the
		// tokens an initialized plane requires by naming its user.
		g, err := r.guard.Admit(ctx, root)
		switch {
		case err != nil:
			a.err = err
		case g.Auth != auth.AuthOff:
			a.err = Errorf(ExitDenied, "AUTH_MISSING", "the plane at %s requires a token: an identity without one (%s, auth off) is not admitted", root, id.Subject)
		default:
			a.id = id
		}
	default:
		// Neither a verified token nor auth off: nothing to judge it by.
		a.err = Errorf(ExitDenied, "AUTH_INVALID", "identity %q is neither a verified token (auth %q) nor auth off (auth %q)", id.Subject, auth.AuthToken, auth.AuthOff)
	}
	if r.admitted == nil {
		r.admitted = map[string]admission{}
	}
	r.admitted[root] = a
	return a
}

// decision is the firewall's answer for one request: the identity it runs
// as, and the refusal (nil: allowed).
type decision struct {
	id      Identity
	refusal *Outcome
	// until is when the decision lapses: auth.Recheck after it was made,
	// or the token's exp (leeway included) if sooner. A stream is then
	// judged again: a token revoked or expired meanwhile is refused.
	until time.Time
}

// decide admits the caller and authorizes one request, once per distinct
// Access in a run, and records a refusal the first time it is met.
func (r *runner) decide(ctx context.Context, req Request) decision {
	c := r.call
	s, err := c.scopeOf(req)
	if err != nil {
		return decision{refusal: &Outcome{Err: err}}
	}
	adm := r.admit(ctx, s.root)
	if fillFromClaims(c.Verb, req, adm.id.Claims) {
		if s, err = c.scopeOf(req); err != nil {
			return decision{refusal: &Outcome{Err: err}}
		}
	}
	// The work order the request names: work_order_id (DESIGN.md §3), or
	// the older fields of cp-install (--work-order) and cp-gate (--wo).
	wo := req.String("work_order_id")
	for _, f := range []string{"work_order", "wo"} {
		if wo == "" {
			wo = req.String(f)
		}
	}
	action := c.Verb.Action
	if c.Verb.ActionOf != nil {
		action = c.Verb.ActionOf(req)
	}
	a := Access{Root: s.root, Subject: adm.id.Subject, Action: action, Tier: s.tier, Session: s.session,
		WorkOrder: wo, Tool: c.Tool.Name, Verb: c.Verb.Name}
	if action == ActionAppend {
		a.EventType = req.String("event_type")
	}
	if adm.err != nil {
		a.Subject = unauthenticated
	}
	now := time.Now()
	if d, ok := r.decisions[a]; ok && now.Before(d.until) {
		return d
	}
	d := decision{id: adm.id, until: now.Add(auth.Recheck)}
	if c := adm.id.Claims; c != nil && adm.id.Auth == auth.AuthToken && c.ExpiresAt > 0 {
		if exp := time.Unix(c.ExpiresAt, 0).Add(auth.Leeway); exp.Before(d.until) {
			d.until = exp
		}
	}
	err = adm.err
	if err == nil {
		err = r.guard.Authorize(ctx, adm.id, a)
	}
	if err != nil {
		d.refusal = r.refuse(ctx, a, adm.id, err)
	} else if c.Verb.AlsoOf != nil {
		if act, tier := c.Verb.AlsoOf(req); act != "" {
			b := a
			b.Action, b.Tier, b.EventType = act, tier, ""
			if err := r.guard.Authorize(ctx, adm.id, b); err != nil {
				d.refusal = r.refuse(ctx, b, adm.id, err)
			}
			return d // judged per request: not kept for the next one
		}
	}
	if r.decisions == nil {
		r.decisions = map[Access]decision{}
	}
	r.decisions[a] = d
	return d
}

// refuse turns the Guard's error into the request's refusal (exit 1, its
// code, or FIREWALL_DENIED) and records it as AUTHZ_DENIED.
func (r *runner) refuse(ctx context.Context, a Access, id Identity, err error) *Outcome {
	c := r.call
	var refusal *Error
	var ce *Error
	var coded interface{ Code() string }
	if errors.As(err, &ce) || errors.As(err, &coded) {
		e := *AsError(err) // a copy: the Guard's error is not ours to change
		refusal = &e
	}
	if refusal == nil || refusal.Code == "" {
		refusal = Errorf(ExitDenied, "FIREWALL_DENIED", "%s %s: %v", c.Tool.Name, c.Verb.Name, err)
	}
	refusal.Exit = ExitDenied // a refusal is a negative verdict, whatever its code
	o := &Outcome{Err: refusal}
	record := r.opts.Record
	if record == nil {
		record = RecordDenial
	}
	c.Identity = id
	rec := func(c *Call) {
		rid, seq, rerr := record(ctx, c, a, refusal)
		if rerr != nil {
			c.Warnf("recording the refusal: %v", rerr)
		}
		o.LedgerEntryID, o.Seq = rid, seq
	}
	if r.deferRecord {
		// A pipelined stream: recorded in order, after the batches
		// before it are applied, and only if they are (runBatchLater).
		cc := *c
		o.record = func() { rec(&cc) }
		return o
	}
	rec(c)
	return o
}

// fillFromClaims gives a request that names no session or work order those
// of the caller's token, where the verb takes them (DESIGN.md §3: --session
// and --wo default to the token's claims and must match them; the firewall
// refuses any other). A request that names a tier (--plane) or a ledger
// file itself is not given a session: it said where it acts. It reports
// whether it filled the session, which changes what the request acts on.
func fillFromClaims(v *Verb, req Request, cl *auth.Claims) (session bool) {
	if cl == nil {
		return false
	}
	if cl.WorkOrder != "" && v.takes("work_order_id") && !req.Has("work_order_id") {
		req["work_order_id"] = cl.WorkOrder
	}
	if cl.Session != "" && v.takes("session_id") && !req.Has("session_id") && !req.Has("plane") && !req.Has("ledger") {
		req["session_id"] = cl.Session
		return true
	}
	return false
}

// takes reports whether the verb has a flag that fills the request field.
func (v *Verb) takes(field string) bool {
	for _, f := range v.Flags {
		if f.Field == field || f.Field == "" && snake(f.Name) == field {
			return true
		}
	}
	return false
}
