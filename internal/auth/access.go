// Package auth is identity and the firewall of DESIGN.md §8: Ed25519-signed
// tokens (JWT, alg EdDSA only) bound to one plane, the built-in table of
// what each role may do at each tier, Cedar forbid policies that tighten
// it, revocations read from HO3's ledger, and the Guard the shared request
// path (internal/cli) asks before any verb runs.
//
// The package knows nothing of the request path: cli hands it an Access
// (who, doing what, where) and gets an error back, or nil.
package auth

// Action is what a verb does, as the firewall judges it (DESIGN.md §8):
// every verb declares one, and capabilities.json lists it.
type Action string

// Actions of DESIGN.md §8's table.
const (
	ActionRead       Action = "read"       // show, verify, prove, check, integrity, versions, whoami, status, list-*
	ActionAppend     Action = "append"     // a tier's ledger grows by the request's entries
	ActionAuthor     Action = "author"     // package sources and archives (stage into the plane's _staging)
	ActionInstall    Action = "install"    // a package into the plane
	ActionRollback   Action = "rollback"   // the plane back to a checkpoint
	ActionCheckpoint Action = "checkpoint" // a version point, or a ledger's signed checkpoint
	ActionRecover    Action = "recover"    // an interrupted install finished or undone
	ActionBootstrap  Action = "bootstrap"  // a new plane
	ActionRegister   Action = "register"   // a framework or spec into the registries
	ActionSign       Action = "sign"       // a package archive signed
	ActionKeygen     Action = "keygen"     // a signing key made
	ActionTrust      Action = "trust"      // the plane's trusted keys changed (cp-install trust, cp-auth init)
	ActionToken      Action = "token"      // a token minted (cp-auth token)
	ActionRevoke     Action = "revoke"     // tokens revoked (cp-auth revoke)
	ActionMigrate    Action = "migrate"    // a tier's ledger moved between stores, or loaded into an empty one (cp-ledger migrate, import)
	ActionWOCreate   Action = "wo-create"  // a work order created
	ActionWOCancel   Action = "wo-cancel"  // a work order cancelled
	ActionWOApprove  Action = "wo-approve" // a work order approved or rejected
	ActionWOStep     Action = "wo-step"    // a work order started, a turn, a completion
	ActionRoute      Action = "route"      // a query routed
	ActionLLM        Action = "llm"        // a model called through the gateway
)

// Mutating reports whether the action changes the plane (everything but
// read and author outside a plane).
func (a Action) Mutating() bool { return a != ActionRead }

// Roles of DESIGN.md §8.
const (
	RoleAdmin      = "admin"
	RoleMaintainer = "maintainer"
	RoleAuditor    = "auditor"
	RoleReader     = "reader"
	RoleWorker     = "worker"
)

// How an identity was established (Identity.Auth, and the metadata._auth
// stamp of entries written without a verified token).
const (
	AuthOff   = "off"   // no token: a plane without auth, or CONTROL_PLANE_AUTH=off by the plane's owner
	AuthToken = "token" // a token verified against a key trusted for purpose auth
)

// Identity is who asks, established once per request path (Guard.Admit)
// before any verb runs, and handed to libraries through their options (the
// actor stamped on ledger entries and receipts).
type Identity struct {
	// Subject is the token's sub; the OS user while auth is off.
	Subject string
	// Auth is AuthOff or AuthToken.
	Auth string
	// Claims are the verified token's claims; nil while auth is off.
	Claims *Claims
}

// Claims are a token's claims (DESIGN.md §8), as verified.
type Claims struct {
	Subject   string   `json:"sub"`
	Role      string   `json:"role"`
	Tiers     []string `json:"tiers"`
	Audience  string   `json:"aud"` // the plane's plane_name
	IssuedAt  int64    `json:"iat"` // Unix seconds
	NotBefore int64    `json:"nbf,omitempty"`
	ExpiresAt int64    `json:"exp"`
	ID        string   `json:"jti"`
	WorkOrder string   `json:"wo,omitempty"`      // workers: the one work order the token serves
	Session   string   `json:"session,omitempty"` // workers: the HO1 session it acts in
}

// Access is one request as the firewall judges it: who, doing what, where.
// It is comparable: the request path decides once per Access in a stream.
type Access struct {
	// Root is the HO3 root of the plane the request acts on; "" when it
	// names no plane (the firewall then has nothing to guard).
	Root    string
	Subject string
	Action  Action
	// Tier is "ho3", "ho2", "ho1", or "" when the request acts on no tier.
	Tier string
	// Session is the HO1 session whose ledger the request acts on, if any.
	Session string
	// WorkOrder is the work order the request names (--wo), if any.
	WorkOrder string
	// EventType is an append's event type (Cedar's context.event_type).
	EventType string
	Tool      string
	Verb      string
}
