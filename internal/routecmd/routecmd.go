// Package routecmd is cp-route: deterministic routing (DESIGN.md §9). It
// reads requests (NDJSON, one per line) and answers each with a decision:
// the handler, mode and prompt pack the request goes to, decided by the
// plane's config/router_policy.json (internal/route), recorded as one
// ROUTE_DECISION entry in the caller's tier ledger (a stream's decisions
// in group commits). route --replay SEQ re-decides a recorded decision
// under the policy it was made under; list-handlers lists the handlers
// installed packages provide.
//
// Exit status: 0 routed (or a replay that agrees), 1 refused (ROUTE_DENIED,
// ROUTE_LIMIT_EXCEEDED, ROUTE_REPLAY_DIFFERENT, BLOB_MISMATCH, a firewall
// refusal), 2 usage, 3 invalid input (ROUTE_POLICY_INVALID,
// ROUTE_HANDLER_UNKNOWN, ROUTE_CAPABILITY_MISSING, ROUTE_EXPR_TIMEOUT,
// ROUTE_EXPR_ERROR, ROUTE_REPLAY_INVALID, CAPABILITIES_INVALID,
// CONFIG_INVALID, a schema violation), 4 filesystem error, lock timeout or
// cancelled, 5 internal error.
package routecmd

import (
	"context"
	"io"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/route"
)

const usage = `cp-route: route requests by declarative rules; every decision in the ledger

Usage:
  cp-route [route] [--plane ho3|ho2|ho1] [--session SES] [--wo WO] < REQUESTS.ndjson
  cp-route route --replay SEQ [--plane P]
  cp-route list-handlers

  Or a JSON request on stdin whose "operation" names the verb (route by default).

route reads one request per line (NDJSON: any JSON object; a pretty-printed
document is one request) and answers each with one line:
  {"status":"ok","result":{"handler":"deployer","mode":"llm_assisted",
   "prompt_pack_id":"PRM-DEPLOY","variables":{...},"decision_seq":12},
   "evidence":{..., "route":{"by":"rule","rule":{"index":0,...},...}}}
The result is a cp-llm complete request (DESIGN.md §9): variables are the
request's "variables" ({} without). The decision follows the plane's
config/router_policy.json (a config package's; built in: the default route
only): deny rules first (the first whose "when" holds denies: ROUTE_DENIED,
exit 1), then the routes in order (the first whose "when" holds decides),
then the classifier, if one is configured (at or above its threshold, 0.8
by default, the classified handler in mode tools_first; below it, or when
no classifier is available, the default route, and the decision says why),
then the default route. Expressions are gojq over the request, compiled
once, each evaluation bounded (ROUTE_EXPR_TIMEOUT); a policy whose
expressions read outside the request (now, env, $ENV, input, inputs, debug,
stderr, halt, halt_error, input_filename, $__loc__, localtime, ...) is refused
when loaded (ROUTE_POLICY_INVALID), and so is a route to a handler no
installed package provides (ROUTE_HANDLER_UNKNOWN) or one lacking a
capability the route requires (ROUTE_CAPABILITY_MISSING). The gates judge a
config package's policy the same way, so such a policy does not install.

limits.llm_calls_per_session counts, per session (--session, or the
token's), the LLM calls routing spends: a classifier call, and a decision
for a target in mode llm_assisted, from the session's ROUTE_DECISION and
ROUTE_RESERVED entries in every tier's ledger (HO3, HO2, HO1 together).
Past it the classifier is not asked and an llm_assisted target is refused
(ROUTE_LIMIT_EXCEEDED, recorded). The count is read, and what spends it
appended, under the route-session locks (HO3's ledger/route-session.lock,
and each PostgreSQL tier's advisory lock), so that processes deciding in
one session at once count each other's decisions. A classifier call is
reserved (ROUTE_RESERVED) under those locks before it is made, outside
them; the decision names its reservation and counts the call once. The
gateway holds the calls made in a session under a work order (the
classifier's included) to the same number.

Every decision, a denial included, is one ROUTE_DECISION entry in the tier
ledger of --plane (default: the tier --root names), submission_id the
session (else the request's hash), with prompts_used, the rule (index,
name, expression hash) or the classifier's answer and confidence, the deny
rule, the policy's hash (the policy kept once under blobs/sha256/), the
request's hash and the request itself. route --replay SEQ re-decides that
entry's request under that policy, with the recorded classifier answer and
session count, and says whether the answer is the same (exit 1 if not:
ROUTE_REPLAY_DIFFERENT).

list-handlers lists the handlers of the installed packages'
modules/<name>/capabilities.json ("handlers": [{"handler", "capabilities"}]),
and the built-in handler "default".

Options (every verb):
  --root DIR      the plane root (else $CONTROL_PLANE, else the nearest HO3 ancestor)
  --format F      json (default) or text (the default on a terminal)
  -v              progress on stderr
  -h              this help; -version the version; --capabilities the operations

Exit status:
  0  routed; a replay that gives the same answer; handlers listed
  1  refused: ROUTE_DENIED, ROUTE_LIMIT_EXCEEDED, ROUTE_REPLAY_DIFFERENT,
     BLOB_MISMATCH, FIREWALL_DENIED, AUTH_*
  2  usage: unknown verb or flag, bad argument
  3  invalid input: stdin not JSON, schema violation, ROUTE_POLICY_INVALID,
     ROUTE_HANDLER_UNKNOWN, ROUTE_CAPABILITY_MISSING, ROUTE_EXPR_TIMEOUT,
     ROUTE_EXPR_ERROR, ROUTE_REPLAY_INVALID, CAPABILITIES_INVALID,
     CONFIG_INVALID
  4  unavailable: lock timeout, filesystem error, cancelled
  5  internal error

Examples:
  echo '{"intent":"deploy","variables":{"service":"api"}}' | cp-route --root plane
  cp-route --root plane --plane ho2 < requests.ndjson | cp-ledger append --root plane --event-type ROUTED
  cp-route route --root plane --replay 12
  cp-route list-handlers --root plane --format text
  cp-ledger show --root plane --event-type ROUTE_DECISION --format text
`

// tool is cp-route's verb table for one run; r holds the run's policy and
// open ledgers.
func tool(r *router) *cli.Tool {
	return &cli.Tool{Name: "cp-route", Usage: usage, Verbs: []*cli.Verb{
		{Name: "route", Schema: "cp-route.route.request.json", Action: cli.ActionRoute, ActionOf: routeAction, Tier: cli.TierPlane,
			Stream: true, Batch: r.batch, Pipeline: r.pipeline, Text: routeText, Plain: plainRoute,
			Flags: []cli.Flag{
				{Name: "plane", Kind: cli.String, Usage: "ho3|ho2|ho1: the tier whose ledger records the decisions (default: the tier of --root)"},
				{Name: "session", Kind: cli.String, Field: "session_id", Usage: "the session whose LLM calls the limit counts (default: the token's)"},
				{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order the request acts for (default: the token's)"},
				{Name: "replay", Kind: cli.Int, Usage: "re-decide the ROUTE_DECISION at this seq under its recorded policy"},
				{Name: "variables", Kind: cli.JSON, Usage: "the request's variables (a JSON object)"},
			}},
		{Name: "list-handlers", Schema: "cp-route.list-handlers.request.json", Action: cli.ActionRead, Tier: cli.TierHO3, Run: listHandlers, Text: handlersText},
	}}
}

// routeAction is what one route request does: a replay only reads.
func routeAction(req cli.Request) cli.Action {
	if req.Has("replay") {
		return cli.ActionRead
	}
	return cli.ActionRoute
}

// Run is cp-route's entry point. A policy's classifier is the gateway
// (cp-llm's engine, in-process), asked as the caller with the policy's
// router prompt pack (classifier.go).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	r := &router{gateway: true}
	defer r.close()
	return cli.RunWith(ctx, tool(r), cli.Options{}, args, stdin, stdout, stderr)
}

// RunWith is Run with a classifier (nil: none) under opts: the seam the
// gateway is wired through, and tests' fakes.
func RunWith(ctx context.Context, clf route.Classifier, opts cli.Options, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	r := &router{clf: clf}
	defer r.close()
	return cli.RunWith(ctx, tool(r), opts, args, stdin, stdout, stderr)
}

// Dispatch runs one cp-route request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	r := &router{gateway: true}
	defer r.close()
	return cli.Dispatch(ctx, tool(r), req, opts)
}
