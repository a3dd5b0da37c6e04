// Package wocmd is cp-wo: work orders (DESIGN.md §13). It creates a work
// order (create: work_orders/WO-YYYYMMDD-NNN.json, written once, and
// WO_CREATED in HO2), checks one (validate), approves it with a signed note
// by a key trusted for work_order (approve: work_orders/<id>.approval and
// WO_APPROVED in HO3), rejects it (WO_REJECTED in HO3), cancels it
// (WO_CANCELLED in HO2) and answers its state, derived from those entries
// only (status). A verb that meets a work order past its expiry records
// WO_EXPIRED in HO2.
//
// It reads a request from flags or a JSON object on stdin and writes one
// JSON envelope to stdout. Exit status: 0 success, 1 refused (SELF_APPROVAL,
// KEY_UNTRUSTED, WO_NOT_FOUND, WO_PAYLOAD_CHANGED, WO_EXPIRED, WO_CLOSED,
// WO_STATE, LEDGER_TRUNCATED, ANCHOR_MISMATCH, a firewall refusal), 2 usage, 3 invalid input (WO_INVALID,
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
cp-wo verb that meets it). start, turn and complete are not built yet.

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
     WO_IDS_EXHAUSTED, FIREWALL_DENIED, AUTH_*; LEDGER_TRUNCATED,
     ANCHOR_MISMATCH (a lower tier's ledger cut or rewritten below an anchor
     of it: every step anchors HO2's checkpoint in HO3's ledger)
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
