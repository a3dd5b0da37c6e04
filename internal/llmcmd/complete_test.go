package llmcmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/auth"
	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/config"
	"github.com/control-plane/cp/internal/llm/llmtest"
	"github.com/control-plane/cp/internal/llm/provider"
	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/internal/wocmd"
)

var defaultProviders = config.DefaultProviders

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// conforms holds a result to the response schema capabilities.json names.
func conforms(t *testing.T, schema, out string) {
	t.Helper()
	s, err := schematest.Oracle(schema)
	require.NoError(t, err)
	var env map[string]any
	require.NoError(t, json.Unmarshal(lastLine([]byte(out)), &env))
	require.NoError(t, s.Validate(env["result"]), "%s", out)
}

// A raw prompt through the built-in mock: the answer, its evidence in
// HO2's ledger (never the body), the hashes of what was sent and answered,
// a weakened control recorded.
func TestRawPromptEvidence(t *testing.T) {
	p := newPlane(t)
	code, out, errs := p.call("", "--prompt", "say hi", "--max-tokens", "64")
	require.Equal(t, 0, code, out+errs)
	require.Empty(t, errs, "a successful call prints nothing on stderr")
	conforms(t, "cp-llm.complete.response.json", out)
	r := result(t, out)
	require.Contains(t, r["text"], "say hi")
	require.Equal(t, sum("say hi"), r["prompt_sha256"])
	require.Equal(t, sum(r["text"].(string)), r["response_sha256"])
	calls := p.entries("LLM_CALL")
	require.Len(t, calls, 1)
	e := calls[0]
	require.Equal(t, r["ledger_entry_id"], e.ID)
	m := e.Metadata
	for k, want := range map[string]any{"gen_ai.provider.name": "mock", "gen_ai.request.model": "mock-1", "gen_ai.response.model": "mock-1",
		"status": "ok", "weakened_control": "raw_prompt", "prompt_sha256": sum("say hi"), "provider_id": "mock"} {
		require.Equal(t, want, m[k], k)
	}
	require.Equal(t, json.Number("64"), m["gen_ai.request.max_tokens"])
	require.NotNil(t, m["gen_ai.usage.input_tokens"])
	require.NotNil(t, m["gen_ai.usage.output_tokens"])
	require.Equal(t, []any{"end_turn"}, m["gen_ai.response.finish_reasons"])
	require.Equal(t, r["reservation_id"], m["reservation_id"])
	line, err := json.Marshal(e)
	require.NoError(t, err)
	require.NotContains(t, string(line), r["text"].(string), "the body is not in the ledger")
	rs := p.entries("LLM_RESERVED")
	require.Len(t, rs, 1)
	require.Equal(t, m["reservation_id"], rs[0].Metadata["reservation_id"])
	require.Less(t, rs[0].Seq, e.Seq)
	require.NoDirExists(t, filepath.Join(p.root, "blobs", "sha256"))

	// --store-bodies: content-addressed, whole, 0644.
	code, out, errs = p.call("", "--prompt", "keep me", "--system", "be brief", "--store-bodies")
	require.Equal(t, 0, code, out+errs)
	r = result(t, out)
	bodies := r["bodies"].(map[string]any)
	for role, text := range map[string]string{"prompt": "keep me", "system": "be brief", "response": r["text"].(string)} {
		rel := bodies[role].(string)
		require.Equal(t, "blobs/sha256/"+strings.TrimPrefix(sum(text), "sha256:"), rel)
		b, err := os.ReadFile(filepath.Join(p.root, rel))
		require.NoError(t, err)
		require.Equal(t, text, string(b))
		fi, err := os.Stat(filepath.Join(p.root, rel))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o444), fi.Mode().Perm(), "a blob is written once, read-only")
	}
	require.Equal(t, sum("be brief"), r["system_sha256"])
	calls = p.entries("LLM_CALL")
	require.Equal(t, bodies["response"], calls[1].Metadata["bodies"].(map[string]any)["response"])

	// Structured output from the mock: the smallest value the schema asks for.
	code, out, errs = p.call(`{"prompt":"colours","schema":{"type":"object","required":["colours"],"properties":{"colours":{"type":"array","minItems":1,"items":{"type":"string"}}}}}`)
	require.Equal(t, 0, code, out+errs)
	require.NotNil(t, result(t, out)["output"])
	// A schema keyword the validator cannot enforce: exit 3 before any call.
	code, out, _ = p.call(`{"prompt":"x","schema":{"type":"object","patternProperties":{"^x":{"type":"string"}}}}`)
	require.Equal(t, 3, code, out)
	require.Equal(t, "LLM_SCHEMA_UNSUPPORTED", errCode(t, out))
	require.Len(t, p.entries("LLM_RESERVED"), 3, "nothing reserved for a refused schema")

	// list-providers: the built-in mock.
	code, out, errs = p.call("", "list-providers")
	require.Equal(t, 0, code, out+errs)
	conforms(t, "cp-llm.list-providers.response.json", out)
	lp := result(t, out)
	require.Equal(t, "mock", lp["default_provider"])
	require.Equal(t, true, lp["source"].(map[string]any)["default"])
}

// A work order's budget holds across calls: llm_calls 2 allows two; the
// third is BUDGET_EXCEEDED (exit 1), recorded as LLM_REFUSED, and nothing
// is reserved for it. A work order without llm_tokens allows nothing.
func TestWorkOrderBudget(t *testing.T) {
	p := newPlane(t)
	id, ses := p.wo("--llm-calls", "2", "--llm-tokens", "100000")
	for i := 0; i < 2; i++ {
		code, out, errs := p.call("", "--prompt", "work", "--wo", id, "--session", ses, "--max-tokens", "100")
		require.Equal(t, 0, code, out+errs)
		r := result(t, out)
		require.Equal(t, id, r["work_order_id"])
		b := r["budgets"].([]any)[0].(map[string]any)
		require.Equal(t, "work_order", b["scope"])
		require.Equal(t, json.Number(itoa(i)), b["spent"].(map[string]any)["calls"])
	}
	code, out, _ := p.call("", "--prompt", "work", "--wo", id, "--session", ses, "--max-tokens", "100")
	require.Equal(t, 1, code, out)
	require.Equal(t, "BUDGET_EXCEEDED", errCode(t, out))
	env := envelope(t, out)
	refused := p.entries("LLM_REFUSED")
	require.Len(t, refused, 1)
	require.Equal(t, env["evidence"].(map[string]any)["ledger_entry_id"], refused[0].ID)
	require.Equal(t, "BUDGET_EXCEEDED", refused[0].Metadata["code"])
	require.Equal(t, id, refused[0].SubmissionID)
	require.Len(t, p.entries("LLM_RESERVED"), 2)

	// Tokens: the reservation counts max_tokens and the input bound.
	id2, ses2 := p.wo("--llm-calls", "10", "--llm-tokens", "1000")
	code, out, _ = p.call("", "--prompt", "big", "--wo", id2, "--session", ses2, "--max-tokens", "900")
	require.Equal(t, 1, code, out)
	require.Equal(t, "BUDGET_EXCEEDED", errCode(t, out))
	require.Equal(t, "tokens", envelope(t, out)["error"].(map[string]any)["details"].(map[string]any)["kind"])
	code, out, errs := p.call("", "--prompt", "small", "--wo", id2, "--session", ses2, "--max-tokens", "100")
	require.Equal(t, 0, code, out+errs)

	// No llm_tokens: nothing of its kind.
	id3, ses3 := p.wo("--llm-calls", "10")
	code, out, _ = p.call("", "--prompt", "x", "--wo", id3, "--session", ses3)
	require.Equal(t, 1, code, out)
	require.Equal(t, "BUDGET_EXCEEDED", errCode(t, out))

	// A session of another work order: refused, recorded.
	code, out, _ = p.call("", "--prompt", "x", "--wo", id2, "--session", ses3, "--max-tokens", "10")
	require.Equal(t, 1, code, out)
	require.Equal(t, "SESSION_MISMATCH", errCode(t, out))
	// A session without its work order: a usage error.
	code, out, _ = p.call("", "--prompt", "x", "--session", ses3)
	require.Equal(t, 2, code, out)
	// An unknown work order.
	code, out, _ = p.call("", "--prompt", "x", "--wo", "WO-"+today()+"-999")
	require.Equal(t, 1, code, out)
	require.Equal(t, "WO_NOT_FOUND", errCode(t, out))
}

func itoa(i int) string { return string(rune('0' + i)) }

// fakePacks resolves the packs of a table (the lead wires internal/prompt
// in its place): a pack with a hash mismatch fails as internal/prompt
// does.
type fakePacks map[string]*resolvedPrompt

type codedErr struct{ code, msg string }

func (e *codedErr) Error() string { return e.msg }
func (e *codedErr) Code() string  { return e.code }

func (f fakePacks) resolve(_ context.Context, _, id string, vars map[string]any) (*resolvedPrompt, error) {
	if id == "PRM-TAMPERED-001" {
		return nil, &codedErr{"PROMPT_HASH_MISMATCH", "prompt pack PRM-TAMPERED-001: its files no longer hash to the registered value"}
	}
	rp, ok := f[id]
	if !ok {
		return nil, &codedErr{"PROMPT_NOT_FOUND", "prompt pack " + id + " is not registered"}
	}
	c := *rp
	c.Text = strings.ReplaceAll(c.Text, "{{.topic}}", vars["topic"].(string))
	c.TextSHA256 = sum(c.Text)
	return &c, nil
}

func usePacks(t *testing.T, f fakePacks) {
	old := resolvePack
	resolvePack = f.resolve
	t.Cleanup(func() { resolvePack = old })
}

// Prompt packs: evidence names the pack, its version and registered hash;
// the pack caps providers, models and max_tokens; under a work order the
// pack must be in its scope; a tampered pack is refused before any call.
func TestPromptPacks(t *testing.T) {
	p := newPlane(t)
	usePacks(t, fakePacks{
		"PRM-SUM-001":  {PromptPackID: "PRM-SUM-001", Version: "1.2.0", SHA256: sum("pack"), Text: "summarize {{.topic}}", Providers: []string{"mock"}, Models: []string{"mock-1"}, MaxTokens: 200},
		"PRM-ELSE-001": {PromptPackID: "PRM-ELSE-001", Version: "1.0.0", SHA256: sum("else"), Text: "x", Providers: []string{"local-openai"}},
	})
	code, out, errs := p.call("", "--pack", "PRM-SUM-001", "--variables", `{"topic":"ledgers"}`)
	require.Equal(t, 0, code, out+errs)
	r := result(t, out)
	require.Equal(t, "PRM-SUM-001", r["prompt_pack_id"])
	require.Equal(t, sum("summarize ledgers"), r["prompt_sha256"])
	e := p.entries("LLM_CALL")[0]
	require.Equal(t, []string{"PRM-SUM-001@1.2.0"}, e.PromptsUsed)
	require.Equal(t, []any{map[string]any{"prompt_pack_id": "PRM-SUM-001", "version": "1.2.0", "sha256": sum("pack")}}, e.Metadata["prompts_used"])
	require.Nil(t, e.Metadata["weakened_control"])
	require.Equal(t, json.Number("200"), e.Metadata["gen_ai.request.max_tokens"], "the pack's max_tokens is the default")

	code, out, _ = p.call("", "--pack", "PRM-SUM-001", "--variables", `{"topic":"x"}`, "--max-tokens", "201")
	require.Equal(t, 1, code, out)
	require.Equal(t, "PROMPT_LIMIT", errCode(t, out))
	d := envelope(t, out)["error"].(map[string]any)["details"].(map[string]any)
	require.Equal(t, "max_tokens", d["field"], "the limit named")
	require.Equal(t, json.Number("201"), d["requested"])
	code, out, _ = p.call("", "--pack", "PRM-ELSE-001", "--variables", `{"topic":"x"}`)
	require.Equal(t, 1, code, out, "a provider the configuration does not list")
	require.Equal(t, "LLM_PROVIDER_UNKNOWN", errCode(t, out))
	code, out, _ = p.call("", "--pack", "PRM-TAMPERED-001")
	require.NotEqual(t, 0, code, out)
	require.Equal(t, "PROMPT_HASH_MISMATCH", errCode(t, out))
	require.Len(t, p.entries("LLM_RESERVED"), 1, "nothing reserved for a refused pack")
	require.Len(t, p.entries("LLM_REFUSED"), 2, "the pack's refusals are recorded")

	// Under a work order: the pack must be in scope.prompt_packs.
	id, ses := p.wo("--llm-calls", "5", "--llm-tokens", "100000", "--prompt-packs", "PRM-OTHER-001")
	code, out, _ = p.call("", "--pack", "PRM-SUM-001", "--variables", `{"topic":"x"}`, "--wo", id, "--session", ses)
	require.Equal(t, 1, code, out)
	require.Equal(t, "SCOPE_VIOLATION", errCode(t, out))
	id, ses = p.wo("--llm-calls", "5", "--llm-tokens", "100000", "--prompt-packs", "PRM-SUM-001")
	code, out, errs = p.call("", "--pack", "PRM-SUM-001", "--variables", `{"topic":"x"}`, "--wo", id, "--session", ses)
	require.Equal(t, 0, code, out+errs)

	// cp-route's result is a request: the route is recorded beside it.
	route := `{"status":"ok","result":{"handler":"summarizer","mode":"llm_assisted","prompt_pack_id":"PRM-SUM-001","variables":{"topic":"routes"},"decision_seq":7},"evidence":{"duration_ms":1}}`
	code, out, errs = p.call(route + "\n")
	require.Equal(t, 0, code, out+errs)
	require.Equal(t, sum("summarize routes"), result(t, out)["prompt_sha256"])
	calls := p.entries("LLM_CALL")
	require.Equal(t, map[string]any{"handler": "summarizer", "mode": "llm_assisted", "decision_seq": json.Number("7")},
		calls[len(calls)-1].Metadata["route"], "the routing decision is recorded beside the call")
}

// Workers: only with a pack (a raw prompt is refused and recorded), only
// in their own session and under their work order (the firewall).
func TestWorkers(t *testing.T) {
	p := newPlane(t)
	usePacks(t, fakePacks{"PRM-SUM-001": {PromptPackID: "PRM-SUM-001", Version: "1.0.0", SHA256: sum("pack"), Text: "summarize {{.topic}}"}})
	id, ses := p.wo("--llm-calls", "5", "--llm-tokens", "100000", "--prompt-packs", "PRM-SUM-001")
	_, ses2 := p.wo("--llm-calls", "5", "--llm-tokens", "100000", "--prompt-packs", "PRM-SUM-001")
	admin := p.initAuth()
	worker := p.mint(admin, "w1", "worker", []any{"ho1"}, id, ses)
	as := func(tok string) cli.Options { return cli.Options{Env: &cli.Env{Root: p.root, Token: tok}} }

	code, out, _ := p.callAs(as(worker), "", "--prompt", "anything")
	require.Equal(t, 1, code, out)
	require.Equal(t, "PROMPT_PACK_REQUIRED", errCode(t, out))
	ref := p.entries("LLM_REFUSED")
	require.Len(t, ref, 1)
	require.Equal(t, "w1", ref[0].Metadata["subject"])
	require.Equal(t, ses, ref[0].Metadata["session_id"], "the session from the token's claims")

	code, out, errs := p.callAs(as(worker), "", "--pack", "PRM-SUM-001", "--variables", `{"topic":"x"}`)
	require.Equal(t, 0, code, out+errs)
	r := result(t, out)
	require.Equal(t, id, r["work_order_id"])
	require.Equal(t, ses, r["session_id"])
	require.Equal(t, "w1", p.entries("LLM_CALL")[0].Actor)

	code, out, _ = p.callAs(as(worker), "", "--pack", "PRM-SUM-001", "--variables", `{"topic":"x"}`, "--session", ses2)
	require.Equal(t, 1, code, out)
	require.Equal(t, "FIREWALL_DENIED", errCode(t, out))
	reader := p.mint(admin, "r1", "reader", []any{"ho3", "ho2", "ho1"}, "", "")
	code, out, _ = p.callAs(as(reader), "", "--prompt", "x")
	require.Equal(t, 1, code, out)
	require.Equal(t, "FIREWALL_DENIED", errCode(t, out))
	// The admin may call with a raw prompt (recorded as a weakened control).
	code, out, errs = p.callAs(as(admin), "", "--prompt", "x")
	require.Equal(t, 0, code, out+errs)
	require.Equal(t, "ops", p.entries("LLM_CALL")[1].Metadata["subject"])
}

// Providers over the local servers: both API kinds, provider errors as
// exit 4 with the status, structured output that does not validate as
// LLM_OUTPUT_INVALID (charged and recorded), the price, and the caps.
func TestLocalProviders(t *testing.T) {
	p := newPlane(t)
	srv := llmtest.New()
	defer srv.Close()
	p.provide(srv.ProvidersJSON(`{"providers": {"local-openai": 20000}}`))
	t.Setenv("LOCAL_ANTHROPIC_KEY", "sk-local-0123456789")
	srv.Answer("a local answer", 1000, 100)

	code, out, errs := p.call("", "list-providers")
	require.Equal(t, 0, code, out+errs)
	require.NotContains(t, out, "sk-local-0123456789", "never the key")
	lp := result(t, out)["providers"].([]any)
	require.Equal(t, true, lp[2].(map[string]any)["key_set"])
	require.Equal(t, "LOCAL_ANTHROPIC_KEY", lp[2].(map[string]any)["key_env"])

	for _, pid := range []string{"local-openai", "local-anthropic"} {
		code, out, errs = p.call("", "--prompt", "hi", "--provider", pid, "--max-tokens", "100")
		require.Equal(t, 0, code, pid+out+errs)
		r := result(t, out)
		require.Equal(t, "a local answer", r["text"])
		// 3 and 15 USD per million tokens are 3 and 15 micro-USD a token.
		require.Equal(t, json.Number("4500"), r["cost_micro_usd"], pid)
	}
	calls := p.entries("LLM_CALL")
	require.Equal(t, "openai", calls[0].Metadata["gen_ai.provider.name"])
	require.Equal(t, "anthropic", calls[1].Metadata["gen_ai.provider.name"])

	// Streamed through each kind.
	for _, pid := range []string{"local-openai", "local-anthropic"} {
		code, out, errs = p.call("", "--prompt", "hi", "--provider", pid, "--max-tokens", "100", "--stream")
		require.Equal(t, 0, code, pid+out+errs)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Greater(t, len(lines), 2, out)
		require.True(t, strings.HasPrefix(lines[0], `{"status":"delta","text":`), lines[0])
		require.Equal(t, "a local answer", result(t, out)["text"])
	}

	// A provider error: exit 4, its status in details, recorded with the attempts.
	srv.Fail(400)
	code, out, _ = p.call("", "--prompt", "hi", "--provider", "local-openai", "--max-tokens", "10")
	require.Equal(t, 4, code, out)
	require.Equal(t, "PROVIDER_ERROR", errCode(t, out))
	det := envelope(t, out)["error"].(map[string]any)["details"].(map[string]any)
	require.Equal(t, json.Number("400"), det["status"])
	last := p.entries("LLM_CALL")
	e := last[len(last)-1]
	require.Equal(t, "provider_error", e.Metadata["status"])
	require.Equal(t, json.Number("400"), e.Metadata["http_status"])
	require.Equal(t, envelope(t, out)["evidence"].(map[string]any)["ledger_entry_id"], e.ID)
	srv.Fail(0)

	// Output that does not validate: charged, recorded, exit 1.
	srv.Answer(`{"n":"not a number"}`, 10, 10)
	code, out, _ = p.call(`{"prompt":"n","provider_id":"local-openai","max_tokens":10,"schema":{"type":"object","required":["n"],"properties":{"n":{"type":"integer"}}}}`)
	require.Equal(t, 1, code, out)
	require.Equal(t, "LLM_OUTPUT_INVALID", errCode(t, out))
	last = p.entries("LLM_CALL")
	require.Equal(t, "output_invalid", last[len(last)-1].Metadata["status"])
	require.Equal(t, json.Number("180"), last[len(last)-1].Metadata["cost_micro_usd"])

	// The provider cap: 20000 micro-USD for local-openai. A call that could
	// cost more than what is left is refused before it is made.
	before := srv.Calls()
	code, out, _ = p.call("", "--prompt", "hi", "--provider", "local-openai", "--max-tokens", "4000")
	require.Equal(t, 1, code, out)
	require.Equal(t, "BUDGET_EXCEEDED", errCode(t, out))
	require.Equal(t, "provider", envelope(t, out)["error"].(map[string]any)["details"].(map[string]any)["scope"])
	require.Equal(t, before, srv.Calls(), "no call made")
	// The anthropic provider has no cap.
	code, out, errs = p.call("", "--prompt", "hi", "--provider", "local-anthropic", "--max-tokens", "4000")
	require.Equal(t, 0, code, out+errs)

	// A key that is not set: exit 4, nothing reserved.
	t.Setenv("LOCAL_ANTHROPIC_KEY", "")
	n := len(p.entries("LLM_RESERVED"))
	code, out, _ = p.call("", "--prompt", "hi", "--provider", "local-anthropic")
	require.Equal(t, 4, code, out)
	require.Equal(t, "LLM_KEY_MISSING", errCode(t, out))
	require.Len(t, p.entries("LLM_RESERVED"), n)
}

// A caller that hangs up mid-stream still gets its LLM_CALL, charged for
// the tokens so far (status cancelled).
func TestStreamHangUp(t *testing.T) {
	p := newPlane(t)
	srv := llmtest.New()
	defer srv.Close()
	p.provide(srv.ProvidersJSON(""))
	srv.Answer(strings.Repeat("word ", 40), 50, 40)
	srv.Stream(8, 0)
	w := &failAfter{n: 1}
	code := cli.RunWith(context.Background(), tool(), cli.Options{}, []string{"--root", p.root, "--prompt", "long", "--provider", "local-openai", "--max-tokens", "100", "--stream"}, nil, w, io.Discard)
	require.Equal(t, 4, code)
	calls := p.entries("LLM_CALL")
	require.Len(t, calls, 1)
	m := calls[0].Metadata
	require.Equal(t, "cancelled", m["status"])
	require.Equal(t, "CANCELLED", m["code"])
	require.NotEqual(t, json.Number("0"), m["gen_ai.usage.output_tokens"], "the tokens so far are charged")
	require.Equal(t, true, m["usage_estimated"], "openai reports usage only at the end: estimated")
	require.NotEqual(t, json.Number("0"), m["cost_micro_usd"])
}

// failAfter accepts n writes, then fails every next one (a closed pipe).
type failAfter struct {
	mu sync.Mutex
	n  int
}

func (f *failAfter) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n <= 0 {
		return 0, errors.New("write: broken pipe")
	}
	f.n--
	return len(b), nil
}

// OTLP: one span per call with the LLM_CALL's attributes; a collector that
// fails is a warning, never a failed call.
func TestOTLPSpan(t *testing.T) {
	p := newPlane(t)
	var mu sync.Mutex
	var got []map[string]any
	status := http.StatusOK
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, "/v1/traces", r.URL.Path)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.Equal(t, "k1", r.Header.Get("X-Team"))
		var doc map[string]any
		require.NoError(t, json.Unmarshal(b, &doc))
		got = append(got, doc)
		w.WriteHeader(status)
	}))
	defer col.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=k1")
	code, out, errs := p.call("", "--prompt", "traced")
	require.Equal(t, 0, code, out+errs)
	require.Empty(t, errs)
	mu.Lock()
	require.Len(t, got, 1)
	span := got[0]["resourceSpans"].([]any)[0].(map[string]any)["scopeSpans"].([]any)[0].(map[string]any)["spans"].([]any)[0].(map[string]any)
	mu.Unlock()
	require.Equal(t, "chat mock-1", span["name"])
	attrs := map[string]any{}
	for _, a := range span["attributes"].([]any) {
		m := a.(map[string]any)
		v := m["value"].(map[string]any)
		for _, x := range v {
			attrs[m["key"].(string)] = x
		}
	}
	r := result(t, out)
	require.Equal(t, "mock", attrs["gen_ai.provider.name"])
	require.Equal(t, "mock-1", attrs["gen_ai.request.model"])
	require.Equal(t, r["response_sha256"], attrs["cp.response_sha256"])
	require.Equal(t, r["ledger_entry_id"], attrs["cp.ledger_entry_id"])
	require.Contains(t, attrs, "gen_ai.usage.input_tokens")
	require.Contains(t, attrs, "gen_ai.response.finish_reasons")

	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	code, out, errs = p.call("", "--prompt", "traced")
	require.Equal(t, 0, code, out+errs)
	require.Contains(t, errs, "cp-llm: warning: OTLP export")
}

// A stream of calls: one envelope each, in order; their reservations and
// their evidence each one append.
func TestStreamOfCalls(t *testing.T) {
	p := newPlane(t)
	id, ses := p.wo("--llm-calls", "3", "--llm-tokens", "100000")
	line := `{"prompt":"p","work_order_id":"` + id + `","session_id":"` + ses + `","max_tokens":10}` + "\n"
	code, out, errs := p.call(strings.Repeat(line, 4))
	require.Equal(t, 1, code, out+errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	for _, l := range lines[:3] {
		require.Equal(t, "ok", envelope(t, l)["status"], l)
	}
	require.Equal(t, "BUDGET_EXCEEDED", errCode(t, lines[3]))
	require.Len(t, p.entries("LLM_CALL"), 3)
	require.Len(t, p.entries("LLM_REFUSED"), 1)
}

var _ = provider.Delta{}
var _ = auth.AuthOff

// A session's calls are capped by config/router_policy.json
// limits.llm_calls_per_session, inside the work order's budget: another
// session of the same work order has its own count.
func TestSessionLimit(t *testing.T) {
	p := newPlane(t)
	p.provide(string(defaultProviders), `{"routes":[],"deny":[],"default_route":{"handler":"default","mode":"tools_first"},"limits":{"llm_calls_per_session":1}}`)
	id, ses := p.wo("--llm-calls", "5", "--llm-tokens", "100000")
	code, out, errs := p.call("", "--prompt", "one", "--wo", id, "--session", ses, "--max-tokens", "10")
	require.Equal(t, 0, code, out+errs)
	code, out, _ = p.call("", "--prompt", "two", "--wo", id, "--session", ses, "--max-tokens", "10")
	require.Equal(t, 1, code, out)
	require.Equal(t, "BUDGET_EXCEEDED", errCode(t, out))
	require.Equal(t, "session", envelope(t, out)["error"].(map[string]any)["details"].(map[string]any)["scope"])
	ses2 := p.tool(wocmd.Run, "start", "--root", p.root, id)["session_id"].(string)
	code, out, errs = p.call("", "--prompt", "three", "--wo", id, "--session", ses2, "--max-tokens", "10")
	require.Equal(t, 0, code, out+errs)
	r := result(t, out)
	require.Equal(t, json.Number("1"), r["budgets"].([]any)[0].(map[string]any)["spent"].(map[string]any)["calls"], "the work order counts both sessions")
	// Without a work order there is no session budget to spend.
	code, out, errs = p.call("", "--prompt", "free")
	require.Equal(t, 0, code, out+errs)
}

// Signal dispositions belong to cp-llm's own process (Run): an in-process
// call (cp-mcp, cp-route's classifier: Dispatch) installs no handler and
// leaves SIGPIPE as its host has it.
func TestInProcessLeavesSignals(t *testing.T) {
	p := newPlane(t)
	st := &state{}
	var out, errb bytes.Buffer
	code := cli.RunWith(context.Background(), toolOf(st), cli.Options{}, []string{"--root", p.root, "--prompt", "hi"}, nil, &out, &errb)
	require.Equal(t, 0, code, out.String()+errb.String())
	require.Nil(t, st.signals, "no SIGINT/SIGTERM handler in-process")
	resp := Dispatch(context.Background(), cli.Request{"prompt": "hi"}, cli.Options{Env: &cli.Env{Root: p.root}})
	require.Equal(t, 0, resp.Exit, string(resp.Stdout)+string(resp.Stderr))
	require.False(t, signal.Ignored(syscall.SIGPIPE), "SIGPIPE untouched in-process")

	st = &state{process: true}
	code = cli.RunWith(context.Background(), toolOf(st), cli.Options{}, []string{"--root", p.root, "--prompt", "hi"}, nil, &out, &errb)
	require.Equal(t, 0, code, out.String()+errb.String())
	require.NotNil(t, st.signals, "the process's own run cancels a call on SIGINT/SIGTERM")
}
