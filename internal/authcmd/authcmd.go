// Package authcmd is cp-auth: identity for a plane (DESIGN.md §8). It makes
// the plane's auth key and trusts it (init), mints tokens (token), shows the
// caller's identity and what it may do (whoami), revokes tokens (revoke) and
// judges an agent's own tool call (check).
//
// It reads a request from flags or a JSON object on stdin and writes one JSON
// envelope to stdout. It writes TOKEN_ISSUED, TOKEN_REVOKED and TOOL_DECISION
// to the plane's HO3 ledger (never a token). Exit status: 0 success, 1 refused
// (AUTH_INITIALIZED, TOOL_DENIED, a firewall refusal), 2 usage, 3 invalid
// input, 4 filesystem error or lock timeout, 5 internal error.
package authcmd

import (
	"context"
	"io"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
)

const usage = `cp-auth: tokens, roles and tiers for a plane, and the firewall's answers

Usage:
  cp-auth init    [--key-out PATH] [--sub S] [--ttl D]
  cp-auth token   --sub S --role R --tiers ho1[,ho2] [--wo W] [--session SES] [--ttl D] [--key PATH]
  cp-auth whoami
  cp-auth revoke  --jti J | --sub S | --role R | --issued-before TIME
  cp-auth check   --action A --resource R [--context JSON]

  Or a JSON request on stdin whose "operation" names the verb:
  echo '{"operation":"check","action":"shell","resource":"curl"}' | cp-auth

init makes the plane's auth signing key outside the plane
($XDG_CONFIG_HOME/control-plane/<plane_name>/auth.key, 0600, or --key-out; never
overwritten), trusts its public key for purpose auth through the one trust-changing
path (a kernel patch release, TRUST_CHANGED), and mints a first admin token for
--sub (default: the OS user) on all three tiers, valid --ttl (default 24h), so the
operator is never locked out. From then on every binary requires a token on this
plane: CONTROL_PLANE_TOKEN holds it, or the path of a file that does;
CONTROL_PLANE_AUTH=off bypasses tokens only for the OS user that owns the plane,
and every entry so written is stamped metadata._auth "off".

Tokens are Ed25519-signed JWTs (alg EdDSA only), bound to the plane (aud =
plane_name). Roles: admin, maintainer, auditor, reader, worker; tiers: a subset of
ho3, ho2, ho1. A worker token names its work order (--wo) and its HO1 session
(--session). Every mint appends TOKEN_ISSUED (jti, sub, role, tiers, exp; never the
token) to HO3; revoke appends TOKEN_REVOKED, honoured from then on by every binary.
check answers allow or deny for an agent's own tool call (a shell command, a URL,
a file) under the table (auditor and reader: only actions "read" or "*.read") and
the plane's Cedar forbid policies (config/policy.cedar), and records TOOL_DECISION.

Options (every verb):
  --root DIR      the plane root (else $CONTROL_PLANE, else the nearest HO3 ancestor)
  --format F      json (default) or text (the default on a terminal)
  -v              progress on stderr
  -h              this help; -version the version; --capabilities the operations

Exit status:
  0  success (check: allowed)
  1  refused: AUTH_INITIALIZED (init ran already), TOOL_DENIED (check denied),
     FIREWALL_DENIED, AUTH_MISSING, AUTH_INVALID, AUTH_EXPIRED, AUTH_REVOKED,
     AUTH_OFF_REFUSED, POLICY_INVALID, AUTH_KEY_UNAVAILABLE
  2  usage: unknown verb or flag, bad argument (a role, tier or duration)
  3  invalid input: stdin not JSON, schema violation
  4  unavailable: lock timeout, filesystem error, cancelled
  5  internal error

Examples:
  cp-auth init --root plane --sub ops
  export CONTROL_PLANE_TOKEN=$(cp-auth token --root plane --sub w1 --role worker \
      --tiers ho1 --wo WO-20261206-007 --session SES-20261206-00000007 --ttl 1h --format text)
  cp-auth whoami --root plane --format text
  cp-auth revoke --root plane --sub w1
  cp-auth revoke --root plane --issued-before 2026-12-06T00:00:00Z
  cp-auth check --root plane --action shell --resource 'curl' --context '{"cwd":"/tmp"}'
  cp-ledger show --root plane --event-type TOKEN_ISSUED --format text
`

func tool() *cli.Tool {
	return &cli.Tool{Name: "cp-auth", Usage: usage, Verbs: []*cli.Verb{
		{Name: "whoami", Schema: "cp-auth.whoami.request.json", Action: cli.ActionRead, Tier: cli.TierHO3, Run: whoami, Text: whoamiText},
		{Name: "init", Schema: "cp-auth.init.request.json", Action: cli.ActionTrust, Tier: cli.TierHO3, Run: initVerb, Text: initText,
			Flags: []cli.Flag{
				{Name: "key-out", Kind: cli.String, Usage: "where to write the signing key"},
				{Name: "sub", Kind: cli.String, Usage: "the first admin token's subject"},
				{Name: "ttl", Kind: cli.String, Usage: "the first admin token's lifetime"},
			}},
		{Name: "token", Schema: "cp-auth.token.request.json", Action: cli.Action(auth.ActionToken), Tier: cli.TierHO3, Run: token, Text: tokenText,
			Flags: []cli.Flag{
				{Name: "sub", Kind: cli.String},
				{Name: "role", Kind: cli.String},
				{Name: "tiers", Kind: cli.List},
				{Name: "wo", Kind: cli.String},
				{Name: "session", Kind: cli.String},
				{Name: "ttl", Kind: cli.String},
				{Name: "key", Kind: cli.String},
			}},
		{Name: "revoke", Schema: "cp-auth.revoke.request.json", Action: cli.Action(auth.ActionRevoke), Tier: cli.TierHO3, Run: revoke, Text: revokeText,
			Flags: []cli.Flag{
				{Name: "jti", Kind: cli.String},
				{Name: "sub", Kind: cli.String},
				{Name: "role", Kind: cli.String},
				{Name: "issued-before", Kind: cli.String},
			}},
		{Name: "check", Schema: "cp-auth.check.request.json", Action: cli.ActionRead, Tier: cli.TierHO3, Run: check, Text: checkText, FailedText: checkText,
			Flags: []cli.Flag{
				{Name: "action", Kind: cli.String},
				{Name: "resource", Kind: cli.String},
				{Name: "context", Kind: cli.JSON},
			}},
	}}
}

// Run is cp-auth's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool(), args, stdin, stdout, stderr)
}

// Dispatch runs one cp-auth request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool(), req, opts)
}
