// Package wocmd is cp-wo: work orders (DESIGN.md §13). It creates a work
// order (create: work_orders/WO-YYYYMMDD-NNN.json, written once, and
// WO_CREATED in HO2), checks one (validate), approves it with a signed note
// by a key trusted for work_order (approve: work_orders/<id>.approval and
// WO_APPROVED in HO3), rejects it (WO_REJECTED in HO3), cancels it
// (WO_CANCELLED in HO2), opens a session under it (start: the session
// ledger and WO_STARTED in HO2, and with --mint-token the worker's token),
// records the turns of a session (turn: TURN, or TURN_REFUSED, in the
// session ledger), completes it once (complete: WO_COMPLETED in HO2) and
// answers its state, derived from those entries only (status). A verb that
// meets a work order past its expiry records WO_EXPIRED in HO2.
//
// It reads a request from flags or a JSON object on stdin and writes one
// JSON envelope to stdout. Exit status: 0 success, 1 refused (SELF_APPROVAL,
// KEY_UNTRUSTED, WO_NOT_FOUND, WO_PAYLOAD_CHANGED, WO_EXPIRED, WO_CLOSED,
// WO_STATE, SESSION_MISMATCH, TURN_OUT_OF_ORDER, TURN_BUDGET_EXCEEDED,
// DECLARED_INPUT_MISMATCH, SCOPE_VIOLATION, LEDGER_TRUNCATED, ANCHOR_MISMATCH,
// a firewall refusal), 2 usage, 3 invalid input (WO_INVALID,
// NOT_REGULAR), 4 filesystem error or lock timeout, 5 internal error.
package wocmd

import (
	"context"
	"io"

	"github.com/control-plane/cp/internal/cli"
)

const usage = `cp-wo: work orders — created, approved by a signed note, their state read from the ledgers

Usage:
  cp-wo create   --type T --title S [--description S] [--tier ho1|ho2] [--paths P,...]
                 [--packages ID,...] [--prompt-packs ID,...] [--event-types E,...]
                 [--turns N] [--llm-calls N] [--llm-tokens N] [--llm-cost-usd X]
                 [--expires-in D | --expires-at TIME] [--file DRAFT.json]
  cp-wo validate WO-ID | --file DRAFT.json
  cp-wo approve  WO-ID [--key KEY]
  cp-wo reject   WO-ID [--reason S]
  cp-wo status   WO-ID
  cp-wo start    WO-ID [--mint-token [--ttl D] [--sub S] [--key KEY]]
  cp-wo turn     [--session SES] < HEADER.json
  cp-wo complete WO-ID [--result-sha256 H]
  cp-wo cancel   WO-ID [--reason S]

  Or a JSON request on stdin whose "operation" names the verb (create by default):
  echo '{"type":"investigation","title":"why is G6 slow","scope":{"paths":[]},"budget":{"turns":5}}' | cp-wo

A work order (work_orders/WO-YYYYMMDD-NNN.json, schemas/work_order.schema.json)
is written once, 0444, as canonical JSON; its payload_hash is sha256: + the
SHA-256 of that canonical JSON, recorded by WO_CREATED in HO2. Types:
code_change, config_change, dependency_add, package_install, rollback,
investigation. Scope paths are glob patterns relative to the plane root ("*"
within a segment, "**" for any number of segments). Defaults: tier ho1, 10
turns, expiry in 72h.

State lives in the ledgers only: created (WO_CREATED, HO2) → approved
(WO_APPROVED, HO3) | rejected (WO_REJECTED, HO3); an open work order →
cancelled (WO_CANCELLED, HO2) | expired (WO_EXPIRED, HO2, recorded by the next
cp-wo verb that meets it); approved → started (WO_STARTED, HO2) → completed
(WO_COMPLETED, HO2).

start opens a session under an approved work order: SES-YYYYMMDD-<8 hex>, its
ledger planes/ho1/sessions/SES/ledger/session.jsonl started by a GENESIS that
records HO2's head, then WO_STARTED naming it. --mint-token (admin only) also
mints the worker's token: role worker, tier ho1, the wo and session claims
(TOKEN_ISSUED recorded, the token only in the answer).

turn records a turn header (schemas/turn_header.schema.json: turn_number,
work_order_id, declared_inputs, prompts_used, outputs) as TURN in the
session's ledger. turn_number is the previous + 1; every declared input is
checked now: {path, sha256} against the file (inside scope.paths, no link on
its path, a regular file), {ledger, seq, entry_hash} against that ledger's
entry (ledger: its checkpoint origin), {artifact, version} against the
registries; budget.turns holds across the work order's sessions. A refusal is
recorded in the session ledger as TURN_REFUSED.

complete records WO_COMPLETED with the result hash, once: again (the same
payload, the same or no result hash) is a no-op that writes nothing.

approve signs a C2SP note whose text is control-plane/work-order/v1, the wo_id,
the payload hash and the expiry, one per line, with --key (or
CONTROL_PLANE_SIGNING_KEY), a key the plane trusts for purpose work_order; the
approver is never the creator. The note is kept as work_orders/WO-ID.approval
(0444) and WO_APPROVED records its hash. G2 later checks all of it again against
the keys trusted then.

Options (every verb):
  --root DIR      the plane root (else $CONTROL_PLANE, else the nearest HO3 ancestor)
  --format F      json (default) or text (the default on a terminal)
  -v              progress on stderr
  -h              this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  refused: SELF_APPROVAL, KEY_UNTRUSTED, WO_NOT_FOUND, WO_NOT_APPROVED,
     WO_PAYLOAD_CHANGED, WO_EXPIRED, WO_CLOSED, WO_STATE, APPROVAL_INVALID,
     WO_IDS_EXHAUSTED, SESSION_MISMATCH, TURN_OUT_OF_ORDER,
     TURN_BUDGET_EXCEEDED, DECLARED_INPUT_MISMATCH, SCOPE_VIOLATION,
     AUTH_KEY_UNAVAILABLE, FIREWALL_DENIED, AUTH_*; LEDGER_TRUNCATED,
     ANCHOR_MISMATCH (a lower tier's ledger cut or rewritten below an anchor
     of it: every step anchors its session in HO2 and HO2 in HO3)
  2  usage: unknown verb or flag, bad argument (a duration, a key)
  3  invalid input: stdin not JSON, schema violation, WO_INVALID, NOT_REGULAR
  4  unavailable: lock timeout, filesystem error, cancelled
  5  internal error

Examples:
  cp-wo create --root plane --type code_change --title 'router: retry on 429' \
      --paths 'lib/router/**,config/router_policy.json' --turns 8 --expires-in 24h
  cp-wo validate --root plane WO-20261206-001
  cp-install trust add --root plane --purpose work_order approver.pub
  CONTROL_PLANE_SIGNING_KEY=approver.key cp-wo approve --root plane WO-20261206-001
  cp-wo status --root plane WO-20261206-001 --format text
  W=$(cp-wo start --root plane WO-20261206-001 --mint-token --ttl 2h | jq -r .result.token)
  echo '{"turn_number":1,"work_order_id":"WO-20261206-001","declared_inputs":[{"path":"lib/router/retry.py","sha256":"sha256:..."}]}' |
      CONTROL_PLANE_TOKEN=$W cp-wo turn --root plane
  cp-wo complete --root plane WO-20261206-001 --result-sha256 sha256:...
  cp-wo create --root plane --file draft.json | jq -r .result.wo_id
  cp-ledger show --root plane --plane ho2 --event-type WO_CREATED --format text
`

func woFlag() cli.Flag {
	return cli.Flag{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order (or the first argument)"}
}

func tool() *cli.Tool {
	return &cli.Tool{Name: "cp-wo", Usage: usage, Verbs: []*cli.Verb{
		{Name: "create", Schema: "cp-wo.create.request.json", Action: cli.ActionWOCreate, Tier: "ho2", Run: create, Text: createText,
			Flags: []cli.Flag{
				{Name: "file", Kind: cli.String, Usage: "a work-order draft document"},
				{Name: "type", Kind: cli.String},
				{Name: "title", Kind: cli.String},
				{Name: "description", Kind: cli.String},
				{Name: "tier", Kind: cli.String},
				{Name: "paths", Kind: cli.List},
				{Name: "packages", Kind: cli.List},
				{Name: "prompt-packs", Kind: cli.List},
				{Name: "event-types", Kind: cli.List},
				{Name: "turns", Kind: cli.Int},
				{Name: "llm-calls", Kind: cli.Int},
				{Name: "llm-tokens", Kind: cli.Int},
				{Name: "llm-cost-usd", Kind: cli.JSON},
				{Name: "expires-at", Kind: cli.String},
				{Name: "expires-in", Kind: cli.String},
			}},
		{Name: "validate", Schema: "cp-wo.validate.request.json", Action: cli.ActionRead, Tier: "ho2", Run: validate, Text: validateText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag(), {Name: "file", Kind: cli.String}}},
		{Name: "approve", Schema: "cp-wo.approve.request.json", Action: cli.ActionWOApprove, Tier: cli.TierHO3, Run: approve, Text: approveText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag(), {Name: "key", Kind: cli.String, Usage: "the approver's signer key or its path"}}},
		{Name: "reject", Schema: "cp-wo.reject.request.json", Action: cli.ActionWOApprove, Tier: cli.TierHO3, Run: reject, Text: decisionText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag(), {Name: "reason", Kind: cli.String}}},
		{Name: "status", Schema: "cp-wo.status.request.json", Action: cli.ActionRead, Tier: "ho2", Run: status, Text: statusText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag()}},
		{Name: "start", Schema: "cp-wo.start.request.json", Action: cli.ActionWOStep, AlsoOf: mintAlso, Tier: "ho2", Run: start, Text: startText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag(),
				{Name: "mint-token", Kind: cli.Bool, Usage: "also mint the worker's token (role worker, tier ho1, wo and session claims): admin only"},
				{Name: "ttl", Kind: cli.String, Usage: "the worker token's lifetime (default 1h)"},
				{Name: "sub", Kind: cli.String, Usage: "the worker token's subject (default worker-<session>)"},
				{Name: "key", Kind: cli.String, Usage: "the auth signing key (default: the plane's, outside it)"},
			}},
		// A turn is crash-safe at every instant (TestKillDuringTurnAndComplete):
		// the work-order lock goes with the process, a torn TURN is repaired
		// and an unanchored one anchored by the next step.
		{Name: "turn", Schema: "cp-wo.turn.request.json", Action: cli.ActionWOStep, Tier: "ho1", Scope: turnScope, Run: turn, Text: turnText, SignalEnds: true,
			Flags: []cli.Flag{woFlag(), {Name: "session", Kind: cli.String, Field: "session_id", Usage: "the session (default: the token's)"}}},
		{Name: "complete", Schema: "cp-wo.complete.request.json", Action: cli.ActionWOStep, Tier: "ho2", Run: complete, Text: completeText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag(), {Name: "result-sha256", Kind: cli.String, Usage: "the hash of the work's result"}}},
		{Name: "cancel", Schema: "cp-wo.cancel.request.json", Action: cli.ActionWOCancel, Tier: "ho2", Run: cancel, Text: decisionText,
			Args: []string{"work_order_id"}, Flags: []cli.Flag{woFlag(), {Name: "reason", Kind: cli.String}}},
	}}
}

// Run is cp-wo's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool(), args, stdin, stdout, stderr)
}

// Dispatch runs one cp-wo request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool(), req, opts)
}
