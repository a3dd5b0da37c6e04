// Package ledgercmd is cp-ledger: append to, query, verify, checkpoint and
// prove ledgers; export them, import them, move a tier's between stores.
//
// It reads a request from flags or stdin (NDJSON for append) and writes one
// JSON envelope per request to stdout; show writes one entry per line. Exit
// status: 0 success, 1 a ledger or proof that does not verify (or a refused
// GENESIS, reserved type or key, or firewall refusal), 2 usage, 3 invalid
// input, 4 lock timeout or filesystem error, 5 internal error.
package ledgercmd

import (
	"context"
	"io"

	"github.com/control-plane/cp/internal/cli"
)

const usage = `cp-ledger: append-only, hash-chained, Merkle-rooted ledgers

Usage:
  cp-ledger append      [--event-type T] [--submission-id S] [--decision D] [--reason R]
                        [--prompts-used a,b] [--metadata JSON]     (or NDJSON requests on stdin)
  cp-ledger show        [--event-type T] [--submission-id S] [--since TIME] [--seq A:B]
                        [--where 'gojq expression'] [--limit N]
  cp-ledger verify      [--legacy] [--verify-key K] [--trusted-checkpoint FILE]
                        (or a prove/consistency result on stdin: verify that proof offline;
                        or a cp-trace file answer: verify that file's provenance offline)
  cp-ledger checkpoint  [--sign-key K] [--origin O]
  cp-ledger prove       --seq N [--tree-size S]
  cp-ledger consistency --from A [--to B]
  cp-ledger genesis     [--parent-ledger PATH] [--parent-hash H] [--metadata JSON]
  cp-ledger export      --out FILE.jsonl [--verify-key K]
  cp-ledger import      --from FILE.jsonl [--verify-key K]          (admin, HO3; host-level)
  cp-ledger migrate     --to postgres|file [--name N] [--dsn-env VAR] (admin, HO3)

  Or a JSON request on stdin whose "operation" names the verb:
  echo '{"operation":"prove","ledger":"l.jsonl","seq":3}' | cp-ledger

Options (every verb):
  --ledger PATH   a ledger file (created on first append); without it, the plane's
                  tier ledger (--plane ho3|ho2|ho1, default: the tier of --root)
  --session SES   the ledger of HO1 session SES (planes/ho1/sessions/SES/ledger/
                  session.jsonl; --plane defaults to ho1); an append to one not
                  started yet starts it with a GENESIS recording HO2's head
  --wo WO         the work order the request acts for (judged by the firewall,
                  stamped metadata._work_order_id on appended entries); an append
                  to a session within one anchors the session's checkpoint in
                  HO2's ledger, and HO2's in HO3's (CHECKPOINT_ANCHORED)
  --root DIR      the plane root (else $CONTROL_PLANE, else the nearest HO3 ancestor)
  --format F      json (default) or text (the default on a terminal)
  -v              progress on stderr
  -h              this help; -version the version; --capabilities the operations

Keys: --sign-key and $CONTROL_PLANE_SIGNING_KEY hold a note signer key or a path to
one; --verify-key and $CONTROL_PLANE_VERIFY_KEY a verifier key or a path to one
(cp-pkg keygen makes both). A plane ledger's checkpoint signatures are also checked
against the plane's keys trusted for checkpoints (config/trusted_keys.json). Fail
closed: a signed checkpoint that no known key verifies fails verify, and a named
key makes a signed checkpoint mandatory. A piped proof is "anchored" only when a
named key checked its checkpoint or it matches --trusted-checkpoint (a checkpoint
kept elsewhere, of the proof's tree or one end of a consistency proof); an
unanchored proof verifies with a warning that nothing vouches for its roots.

A plane's tier ledger (bootstrapped with a plane_name) gets a checkpoint signed
by the plane's own key ($XDG_CONFIG_HOME/control-plane/NAME/checkpoint.key,
outside the plane) with every append; an append that cannot read the key is
refused (CHECKPOINT_KEY_UNAVAILABLE), and verify requires that checkpoint
(CHECKPOINT_MISSING, CHECKPOINT_INVALID, CHECKPOINT_INCONSISTENT).

Ledgers in PostgreSQL (tier.json "ledger_store", the DSN in the environment
variable it names): export writes any ledger as a file ledger (.jsonl and .tlog,
byte-identical to the file store's) outside every plane and verifies the copy;
import loads a verified file ledger into a tier's EMPTY ledger in PostgreSQL;
migrate moves a tier's ledger between stores, recorded as LEDGER_MIGRATED,
tier.json switched last (a move that stopped is finished by running it again).

Exit status:
  0  success (the ledger or proof verifies)
  1  verification failed, GENESIS refused on a non-empty ledger, or a request
     refused: a reserved event type or metadata key (RESERVED_EVENT_TYPE,
     RESERVED_METADATA: keys beginning with _ are stamped by the tools), or
     the firewall (FIREWALL_DENIED, AUTH_*; recorded as AUTHZ_DENIED in HO3)
  2  usage: unknown verb or flag, bad argument (a seq or size outside the ledger)
  3  invalid input: stdin not JSON, schema violation, a request over 16 MiB
     (REQUEST_TOO_LARGE), bad --where expression or one past its limits (2 s an
     entry, 10 s in all, 512 MiB), a path that is not a regular file or a ledger
     named through a link (NOT_REGULAR, LEDGER_LINKED)
  4  unavailable: lock timeout, filesystem error, cancelled
  5  internal error

Examples:
  cp-ledger append --ledger audit.jsonl --event-type TOOL_CALL --decision ALLOW \
      --metadata '{"tool":"bash"}'
  printf '%s\n' '{"event_type":"A"}' '{"event_type":"B"}' | cp-ledger append --ledger audit.jsonl
  cp-ledger show --ledger audit.jsonl --where '.metadata.tool == "bash"' | cp-ledger append --ledger copy.jsonl
  cp-ledger checkpoint --ledger audit.jsonl --sign-key ops.key
  cp-ledger verify --ledger audit.jsonl --verify-key ops.pub
  cp-ledger prove --ledger audit.jsonl --seq 1 | cp-ledger verify --verify-key ops.pub
  cp-trace file --root plane lib/tools/x.sh | cp-ledger verify --root plane
  cp-ledger verify --legacy --ledger old/governance.jsonl
  CONTROL_PLANE_LEDGER_DSN='host=/var/run/postgresql dbname=cp' cp-ledger migrate --plane ho3 --to postgres
  cp-ledger export --plane ho3 --out /backup/governance.jsonl
`

var common = []cli.Flag{
	{Name: "ledger", Kind: cli.String, Usage: "ledger file"},
	{Name: "plane", Kind: cli.String, Usage: "ho3|ho2|ho1"},
	{Name: "session", Kind: cli.String, Field: "session_id", Usage: "an HO1 session's ledger (SES-YYYYMMDD-<8 hex>)"},
	{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order the request acts for"},
}

func flags(fs ...cli.Flag) []cli.Flag { return append(append([]cli.Flag{}, common...), fs...) }

// upstreamEntry is the append request an upstream tool's result makes
// (DESIGN.md §9: cp-llm's result piped into cp-ledger append --event-type X
// becomes an entry whose metadata holds it): the result as the entry's
// metadata, unless it is itself an append request (it names an
// event_type), which is taken as it is.
func upstreamEntry(result cli.Request) cli.Request {
	if result.Has("event_type") {
		return result
	}
	return cli.Request{"metadata": map[string]any(result)}
}

// tool is cp-ledger's verb table for one run; w holds the run's open
// ledgers.
func tool(w *writers) *cli.Tool {
	return &cli.Tool{Name: "cp-ledger", Usage: usage, Verbs: []*cli.Verb{
		{Name: "append", Schema: "cp-ledger.append.request.json", Action: cli.ActionAppend, Tier: cli.TierPlane, Scope: w.scope, Stream: true, Batch: w.appendBatch,
			Upstream: upstreamEntry,
			Flags: flags(
				cli.Flag{Name: "event-type", Kind: cli.String},
				cli.Flag{Name: "submission-id", Kind: cli.String},
				cli.Flag{Name: "decision", Kind: cli.String},
				cli.Flag{Name: "reason", Kind: cli.String},
				cli.Flag{Name: "prompts-used", Kind: cli.List},
				cli.Flag{Name: "metadata", Kind: cli.JSON},
			)},
		{Name: "show", Schema: "cp-ledger.show.request.json", Action: cli.ActionRead, Tier: cli.TierPlane, Scope: w.scope, Run: show, Raw: true,
			Flags: flags(
				cli.Flag{Name: "event-type", Kind: cli.String},
				cli.Flag{Name: "submission-id", Kind: cli.String},
				cli.Flag{Name: "since", Kind: cli.String},
				cli.Flag{Name: "seq", Kind: cli.String},
				cli.Flag{Name: "where", Kind: cli.String},
				cli.Flag{Name: "limit", Kind: cli.Int},
			)},
		{Name: "verify", Schema: "cp-ledger.verify.request.json", Action: cli.ActionRead, Tier: cli.TierPlane, Scope: w.scope, Run: verify, Text: verifyText, FailedText: verifyFailedText,
			Flags: flags(
				cli.Flag{Name: "legacy", Kind: cli.Bool},
				cli.Flag{Name: "verify-key", Kind: cli.String},
				cli.Flag{Name: "trusted-checkpoint", Kind: cli.String},
			)},
		{Name: "checkpoint", Schema: "cp-ledger.checkpoint.request.json", Action: cli.ActionCheckpoint, Tier: cli.TierPlane, Scope: w.scope, Run: checkpoint,
			Flags: flags(
				cli.Flag{Name: "sign-key", Kind: cli.String},
				cli.Flag{Name: "origin", Kind: cli.String},
			)},
		{Name: "prove", Schema: "cp-ledger.prove.request.json", Action: cli.ActionRead, Tier: cli.TierPlane, Scope: w.scope, Run: prove,
			Flags: flags(
				cli.Flag{Name: "seq", Kind: cli.Int},
				cli.Flag{Name: "tree-size", Kind: cli.Int},
				cli.Flag{Name: "origin", Kind: cli.String},
			)},
		{Name: "consistency", Schema: "cp-ledger.consistency.request.json", Action: cli.ActionRead, Tier: cli.TierPlane, Scope: w.scope, Run: consistency,
			Flags: flags(
				cli.Flag{Name: "from", Kind: cli.Int},
				cli.Flag{Name: "to", Kind: cli.Int},
			)},
		{Name: "genesis", Schema: "cp-ledger.genesis.request.json", Action: cli.ActionAppend, Tier: cli.TierPlane, Scope: w.scope, Run: genesis,
			Flags: flags(
				cli.Flag{Name: "parent-ledger", Kind: cli.String},
				cli.Flag{Name: "parent-hash", Kind: cli.String},
				cli.Flag{Name: "submission-id", Kind: cli.String},
				cli.Flag{Name: "reason", Kind: cli.String},
				cli.Flag{Name: "metadata", Kind: cli.JSON},
			)},
		{Name: "export", Schema: "cp-ledger.export.request.json", Action: cli.ActionRead, Tier: cli.TierPlane, Scope: w.scope, Run: exportVerb,
			Flags: flags(
				cli.Flag{Name: "out", Kind: cli.String},
				cli.Flag{Name: "verify-key", Kind: cli.String},
			)},
		{Name: "import", Schema: "cp-ledger.import.request.json", Action: cli.ActionMigrate, Tier: cli.TierPlane, Scope: w.scope, Run: importVerb,
			Flags: []cli.Flag{
				{Name: "plane", Kind: cli.String, Usage: "ho3|ho2|ho1"},
				{Name: "from", Kind: cli.String},
				{Name: "verify-key", Kind: cli.String},
			}},
		{Name: "migrate", Schema: "cp-ledger.migrate.request.json", Action: cli.ActionMigrate, Tier: cli.TierPlane, Scope: w.scope, Run: migrateVerb,
			Flags: []cli.Flag{
				{Name: "plane", Kind: cli.String, Usage: "ho3|ho2|ho1"},
				{Name: "to", Kind: cli.String},
				{Name: "name", Kind: cli.String},
				{Name: "dsn-env", Kind: cli.String},
			}},
	}}
}

// Run is cp-ledger's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var w writers
	defer w.close()
	return cli.Run(ctx, tool(&w), args, stdin, stdout, stderr)
}

// Dispatch runs one cp-ledger request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	var w writers
	defer w.close()
	return cli.Dispatch(ctx, tool(&w), req, opts)
}
