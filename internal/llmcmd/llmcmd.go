// Package llmcmd is cp-llm: the one governed gateway to model providers
// (DESIGN.md §9). complete (the default) makes a model call through a
// registered prompt pack (or a raw prompt: refused for workers, recorded
// as a weakened control for others), under the budgets of its work order
// and session and the caps of config/providers.json, and records it:
// LLM_RESERVED before the call, LLM_CALL after it, LLM_REFUSED for a call
// refused, all in HO2's ledger. list-providers shows the providers in
// force, their models and prices, and whether each key variable is set.
//
// It reads a request from flags or JSON on stdin (NDJSON: a stream of
// calls, their evidence group-committed) and writes one JSON envelope per
// call to stdout; with --stream, {"status":"delta","text":...} lines come
// first. Exit status: 0 success, 1 refused (BUDGET_EXCEEDED,
// PROMPT_PACK_REQUIRED, PROMPT_LIMIT, SCOPE_VIOLATION,
// SESSION_MISMATCH, WO_*, LLM_PROVIDER_UNKNOWN, LLM_MODEL_UNKNOWN,
// LLM_OUTPUT_INVALID, a firewall refusal), 2 usage, 3 invalid input
// (LLM_REQUEST_INVALID, LLM_SCHEMA_UNSUPPORTED, CONFIG_INVALID), 4
// unavailable (PROVIDER_ERROR with the provider's status, CANCELLED,
// LLM_KEY_MISSING, a lock timeout), 5 internal error.
package llmcmd

import (
	"context"
	"io"
	"os/signal"
	"syscall"

	"github.com/control-plane/cp/internal/cli"
)

const usage = `cp-llm: the one governed gateway to model providers — budgets, evidence, prompt packs

Usage:
  cp-llm [complete] (--pack PRM-ID [--variables JSON] | --prompt TEXT) [--system TEXT]
                    [--max-tokens N] [--temperature X] [--provider ID] [--model M]
                    [--schema JSON] [--wo WO-ID] [--session SES-ID] [--store-bodies] [--stream]
  cp-llm load-prompt PRM-ID [--variables JSON]
  cp-llm list-providers
  cp-llm recover

  Or JSON on stdin whose "operation" names the verb (complete by default); for
  complete, NDJSON: one call per line, answered in order, evidence group-committed.
  cp-route's result is a complete request: cp-route ... | cp-llm | cp-ledger append --event-type X

complete calls the provider config/providers.json names (the request's
provider_id, else the pack's first allowed, else default_provider; built in:
the offline mock) with the pack rendered with its variables (strict), or a
raw prompt. A pack must be registered and hash to its registered value now
(PROMPT_HASH_MISMATCH); it caps the providers, models and max_tokens allowed
(PROMPT_LIMIT); under a work order it must be in scope.prompt_packs
(SCOPE_VIOLATION). A worker calls only with a pack, only under its work order
and in its session (PROMPT_PACK_REQUIRED; the firewall). A raw prompt from
anyone else is recorded as a weakened control (weakened_control: raw_prompt).

Budgets: under a work order, its budget (llm_calls, llm_tokens, llm_cost_usd;
an absent one allows nothing) counts every call of all its sessions;
config/router_policy.json limits.llm_calls_per_session caps one session's
calls; config/providers.json caps (plane_micro_usd, providers, subjects) count
every call on the plane. Before the call, holding HO2's ledger lock, the
gateway sums what is spent and reserved (from tallies beside HO2's ledger:
the caps' in ledger/llm-tally.json, each work order's in
ledger/llm-wo.<WO-ID>.json, each believed only when its MAC and the ledger's
tree hold, and caught up from every entry since, each checked against the
tree: an edited line is LEDGER_INVALID, exit 1; a tally begun from nothing
reads from the work order's first WO_CREATED, as checked reads recorded it
in ledger/llm-created.json) and reserves the
largest cost and tokens the call could reach (LLM_RESERVED), or refuses it
(BUDGET_EXCEEDED, LLM_REFUSED recorded). After it, LLM_CALL settles the
reservation to the usage reported; a call cancelled or cut is charged for its
tokens so far; a reservation never settled (a killed caller) counts in full,
and is settled in full (an LLM_CALL, status abandoned) by the next call
whose sums find it, or by recover. A call marks its reservation in flight
(a lock on ledger/llm-inflight.lock that the kernel drops when the caller
dies), so a call in flight is never taken for an abandoned one.

recover settles every abandoned reservation of the plane at once (admin and
maintainer, action recover at HO3): idempotent; calls in flight and
reservations made on another boot or host are left alone and counted. It
also recomputes the tallies and llm-created.json from the ledger and rewrites
them, warning of any that disagreed, and reports (hidden_reads, and on stderr) a reservation whose
wo_spent (the work order's sums it was reserved against) is below the
ledger's: a read hidden from that call.

Evidence (LLM_CALL, HO2): prompts_used (pack id, version, registered hash),
gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model,
gen_ai.usage.input_tokens, gen_ai.usage.output_tokens,
gen_ai.response.finish_reasons, duration, prompt and response hashes
(sha256:), cost and reservation in micro-USD, every HTTP attempt, the status.
Never a body unless --store-bodies (then blobs/sha256/<hex>, content-addressed).
With OTEL_EXPORTER_OTLP_ENDPOINT set, one OTLP/HTTP JSON span per call (a
failed export is a warning, never a failed call).

load-prompt renders a registered pack as complete would send it (its files
re-hashed against the registered digest first), with its hash and limits:
what a worker declares in its turn header (prompts_used).

Keys come only from this process's environment (api_key_env, else
ANTHROPIC_API_KEY / OPENAI_API_KEY): in the enforced setup it is the service
user's process, never a worker's.

Options (every verb):
  --root DIR      the plane root (else $CONTROL_PLANE, else the nearest HO3 ancestor)
  --format F      json (default) or text (the default on a terminal)
  -v              progress on stderr
  -h              this help; -version the version; --capabilities the operations

Exit status:
  0  success
  1  refused: BUDGET_EXCEEDED, PROMPT_PACK_REQUIRED, PROMPT_LIMIT,
     PROMPT_HASH_MISMATCH, PROMPT_NOT_FOUND, SCOPE_VIOLATION, SESSION_MISMATCH, WO_REQUIRED,
     WO_NOT_APPROVED, WO_EXPIRED, WO_CLOSED, LLM_PROVIDER_UNKNOWN,
     LLM_MODEL_UNKNOWN, LLM_OUTPUT_INVALID (charged and recorded),
     FIREWALL_DENIED, AUTH_*
  2  usage: unknown verb or flag, bad argument
  3  invalid input: stdin not JSON, schema violation, LLM_REQUEST_INVALID,
     LLM_SCHEMA_UNSUPPORTED, PROMPT_VARIABLES_INVALID, PROMPT_RENDER_FAILED,
     CONFIG_INVALID
  4  unavailable: PROVIDER_ERROR (details.status: the provider's), CANCELLED,
     LLM_KEY_MISSING, lock timeout
  5  internal error

Examples:
  cp-llm --root plane --prompt 'say hi' --max-tokens 64
  cp-llm --root plane --pack PRM-SUMMARIZE-001 --variables '{"text":"..."}' --wo WO-20261206-001
  echo '{"prompt":"list three colours","schema":{"type":"array","items":{"type":"string"}}}' | cp-llm --root plane
  cp-llm --root plane --prompt 'tell a story' --stream | grep -v '"status":"delta"'
  cp-route --root plane < request.json | cp-llm | cp-ledger append --event-type ANSWERED --plane ho2
  cp-llm load-prompt PRM-SUMMARIZE-001 --root plane --variables '{"text":"..."}' --format text
  cp-llm list-providers --root plane --format text
  cp-llm recover --root plane --format text
  cp-ledger show --root plane --plane ho2 --event-type LLM_CALL --format text
`

func tool() *cli.Tool { return toolOf(&state{}) }

func toolOf(st *state) *cli.Tool {
	return &cli.Tool{Name: "cp-llm", Usage: usage, Verbs: []*cli.Verb{
		{Name: "complete", Schema: "cp-llm.complete.request.json", Action: cli.ActionLLM, Tier: "ho1", Scope: callScope,
			Stream: true, Run: st.complete, Batch: st.completeBatch, Text: completeText, Plain: plainComplete,
			Flags: []cli.Flag{
				{Name: "pack", Kind: cli.String, Field: "prompt_pack_id", Usage: "the prompt pack (PRM-...)"},
				{Name: "variables", Kind: cli.JSON, Usage: "the pack's variables (a JSON object)"},
				{Name: "prompt", Kind: cli.String, Usage: "a raw prompt (ungoverned: refused for workers)"},
				{Name: "system", Kind: cli.String, Usage: "the system prompt"},
				{Name: "max-tokens", Kind: cli.Int},
				{Name: "temperature", Kind: cli.JSON},
				{Name: "provider", Kind: cli.String, Field: "provider_id"},
				{Name: "model", Kind: cli.String},
				{Name: "schema", Kind: cli.JSON, Usage: "a JSON Schema for structured output"},
				{Name: "wo", Kind: cli.String, Field: "work_order_id", Usage: "the work order whose budget the call spends (default: the token's)"},
				{Name: "session", Kind: cli.String, Field: "session_id", Usage: "the session (default: the token's)"},
				{Name: "store-bodies", Kind: cli.Bool, Usage: "keep the prompt and the response under blobs/sha256/"},
				{Name: "stream", Kind: cli.Bool, Usage: "write delta lines as the answer comes"},
			}},
		loadPromptVerb(),
		{Name: "list-providers", Schema: "cp-llm.list-providers.request.json", Action: cli.ActionRead, Tier: "ho3",
			Run: listProviders, Text: providersText},
		recoverVerb(),
	}}
}

// Run is cp-llm's entry point as a process (cmd/cp-llm): the only path
// that touches the process's signal dispositions. A closed stdout becomes
// a write error (EPIPE: SIGPIPE is ignored), not the end of the process,
// so a caller that hangs up mid-stream still gets its call recorded and
// charged; SIGINT and SIGTERM cancel a call in flight (state.watchSignals).
// In-process callers use Dispatch, which does neither.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	signal.Ignore(syscall.SIGPIPE)
	return cli.Run(ctx, toolOf(&state{process: true}), args, stdin, stdout, stderr)
}

// Dispatch runs one cp-llm request in-process (cli.Dispatch): cp-route's
// classifier and cp-mcp call the gateway through it.
func Dispatch(ctx context.Context, req cli.Request, opts cli.Options) cli.Response {
	return cli.Dispatch(ctx, tool(), req, opts)
}

// callScope is what a call acts on, for the firewall: the HO1 session it
// is made in (a worker's own, which its token names), else HO2, where its
// budget and evidence are.
func callScope(c *cli.Call, req cli.Request) (root, tier, session string, err error) {
	root, err = c.Root()
	if err != nil {
		return "", "", "", err
	}
	if s := req.String("session_id"); s != "" {
		return root, "ho1", s, nil
	}
	return root, "ho2", "", nil
}
