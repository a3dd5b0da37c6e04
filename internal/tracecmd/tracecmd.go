// Package tracecmd is cp-trace: provenance and compliance questions
// answered with evidence (DESIGN.md §14). It reads the plane (registries,
// receipts, manifests, checkpoints, the tiers' ledgers through their
// indexes) and writes nothing: every verb is a read.
//
// It reads a request from flags or a JSON object on stdin and writes one
// JSON envelope to stdout. Exit status: 0 success, 1 a negative verdict
// (FILE_TAMPERED, PROVENANCE_UNRECORDED, PROVENANCE_INVALID, a firewall
// refusal), 2 usage (an unknown id or path: ID_NOT_FOUND, FILE_NOT_OWNED),
// 3 invalid input, 4 filesystem error, 5 internal error.
package tracecmd

import (
	"context"
	"io"

	"github.com/control-plane/cp/internal/cli"
)

const usage = `cp-trace: provenance and compliance, answered with evidence

Usage:
  cp-trace inventory  [--plane ho3|ho2|ho1]     installed packages per tier
  cp-trace file PATH                           owner, recorded vs on-disk sha256, mode,
                                               the entries that touched it, inclusion proofs
  cp-trace explain ID                          FMWK-, SPEC-, PKG-, WO-, PRM-, VER- or LED- id:
                                               what it is, its relations and status
  cp-trace compliance frameworks | specs | summary | gates
  cp-trace compliance troubleshoot [--error CODE|GATE]
                                               what an error code means, who emits it,
                                               how to fix it (every code, or a gate's)
  cp-trace agent-context [--wo WO-ID] [--session SES-ID]
                                               the deterministic document an agent reads
                                               before a turn

  Or a JSON request on stdin whose "operation" names the verb (inventory by default):
  echo '{"operation":"file","path":"lib/tools/x.sh"}' | cp-trace

file PATH takes a path relative to the plane root (planes/ho1/... for a lower
tier) or an absolute path inside the plane. It answers the owning package and
version, the sha256 and mode its receipt records and those on disk (read
without following a link, in the file or a directory on the way), every entry
of its tier's ledger that touched the file (the installs and upgrades of its
package, the rollbacks that restored it), and the
evidence that proves it: the entry that installed the owner's version and the
latest entry, whole, each with an inclusion proof against the ledger's latest
signed checkpoint, the installed manifest (its hash is in the install entry)
and the receipt. Pipe it into cp-ledger verify to check all of it offline. A
file whose bytes or mode are not what its owner installed (or that is missing,
or a link) is FILE_TAMPERED, exit 1, with the same answer under the error.

agent-context lists what an agent declares in its next turn header, each with
its hash: files {path, sha256} (work order, operator configuration), ledgers
{ledger, seq, entry_hash}, artifacts {artifact, version} (frameworks, specs,
packages, prompt packs); the caller's subject and allowed actions; the work
order (--wo, else the token's wo claim) with scope and budget left; the
session's ledger head (--session, else the token's session claim). The same
plane state gives the same bytes.

Options (every verb):
  --root DIR      the plane root (else $CONTROL_PLANE, else the nearest HO3 ancestor)
  --format F      json (default) or text (the default on a terminal)
  -v              progress on stderr
  -h              this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  a negative verdict: FILE_TAMPERED (the file is not what its owner
     installed), PROVENANCE_UNRECORDED (no ledger entry records the install),
     PROVENANCE_INVALID, FIREWALL_DENIED, AUTH_*
  2  usage: unknown verb or flag, an id or path nothing on the plane holds
     (ID_NOT_FOUND, FILE_NOT_OWNED)
  3  invalid input: stdin not JSON, schema violation, a registry or receipt
     that does not parse
  4  unavailable: filesystem error, cancelled
  5  internal error

Examples:
  cp-trace inventory --root plane --format text
  cp-trace file --root plane lib/tools/x.sh --format text
  cp-trace file --root plane lib/tools/x.sh | cp-ledger verify --root plane
  cp-trace explain --root plane PKG-TOOLS-001 --format text
  cp-trace explain --root plane WO-20261206-001
  cp-trace compliance summary --root plane --format text
  cp-trace compliance gates --root plane --format text
  cp-trace compliance troubleshoot --error SCOPE_VIOLATION --format text
  cp-trace compliance troubleshoot --error G1
  CONTROL_PLANE_TOKEN=$W cp-trace agent-context --root plane > context.json
`

func tool() *cli.Tool {
	// Each verb is a literal with a constant Name: internal/cli's catalogue
	// test follows a verb's Run from its literal to credit the codes it emits.
	const tier = cli.TierHO3
	return &cli.Tool{Name: "cp-trace", Usage: usage, Verbs: []*cli.Verb{
		{Name: "inventory", Schema: "cp-trace.inventory.request.json", Action: cli.ActionRead, Tier: tier, Run: inventory, Text: inventoryText,
			Flags: []cli.Flag{{Name: "plane", Kind: cli.String, Usage: "ho3|ho2|ho1 (default: all)"}}},
		{Name: "file", Schema: "cp-trace.file.request.json", Action: cli.ActionRead, Tier: tier, Run: file, Text: fileText, FailedText: fileText,
			Args: []string{"path"}, Flags: []cli.Flag{{Name: "path", Kind: cli.String, Usage: "the file (or the first argument)"}}},
		{Name: "explain", Schema: "cp-trace.explain.request.json", Action: cli.ActionRead, Tier: tier, Run: explain, Text: explainText,
			Args: []string{"id"}, Flags: []cli.Flag{{Name: "id", Kind: cli.String, Usage: "the id (or the first argument)"}}},
		{Name: "compliance-frameworks", Schema: "cp-trace.compliance-frameworks.request.json", Action: cli.ActionRead, Tier: tier,
			Run: frameworks, Text: frameworksText},
		{Name: "compliance-specs", Schema: "cp-trace.compliance-specs.request.json", Action: cli.ActionRead, Tier: tier,
			Run: specs, Text: specsText},
		{Name: "compliance-summary", Schema: "cp-trace.compliance-summary.request.json", Action: cli.ActionRead, Tier: tier,
			Run: summary, Text: summaryText},
		{Name: "compliance-gates", Schema: "cp-trace.compliance-gates.request.json", Action: cli.ActionRead, Tier: tier,
			Run: gates, Text: gatesText},
		// troubleshoot reads no plane: the catalogue is the binary's own.
		{Name: "compliance-troubleshoot", Schema: "cp-trace.compliance-troubleshoot.request.json", Action: cli.ActionRead, Tier: cli.TierNone,
			Run: troubleshoot, Text: troubleshootText,
			Flags: []cli.Flag{{Name: "error", Kind: cli.String, Field: "code", Usage: "an error code (or a gate: the codes it emits); none: every code"}}},
		{Name: "agent-context", Schema: "cp-trace.agent-context.request.json", Action: cli.ActionRead, Tier: tier, Run: agentContext, Text: contextText,
			Flags: []cli.Flag{
				{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order (default: the token's wo claim)"},
				{Name: "session", Kind: cli.String, Field: "session_id", Usage: "the HO1 session (default: the token's session claim)"}}},
	}}
}

// Run is cp-trace's entry point.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(ctx, tool(), args, stdin, stdout, stderr)
}

// Dispatch runs one cp-trace request in-process (cli.Dispatch).
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool(), req, opts)
}
