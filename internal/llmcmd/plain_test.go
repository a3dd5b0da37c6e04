package llmcmd

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/cli"
	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/schemas"
)

const completeSchema = "cp-llm.complete.request.json"

// plainRequests are requests of the plain shape: the benchmark's flags, a
// pack with its variables under a work order and session, cp-route's
// result, every field at its bounds.
var plainRequests = []string{
	`{"prompt":"say hi","provider_id":"local-openai","max_tokens":64}`,
	`{"prompt_pack_id":"PRM-SUMMARIZE-001","variables":{"text":"..."},"work_order_id":"WO-20261206-001","session_id":"SES-20261206-0a1b2c3d"}`,
	`{"handler":"summarize","mode":"llm_assisted","prompt_pack_id":"PRM-SUMMARIZE-001","variables":{},"decision_seq":12}`,
	`{"prompt":"x","system":"","max_tokens":1000000,"temperature":2,"model":"` + strings.Repeat("m", 256) + `","schema":{"type":"array"},"store_bodies":true,"stream":false,"mode":"tools_first","decision_seq":0}`,
	`{"prompt":"x","max_tokens":1,"temperature":0.123456,"provider_id":"a` + strings.Repeat("-", 63) + `"}`,
	`{"prompt_pack_id":"PRM-` + strings.Repeat("9", 124) + `","temperature":0}`,
}

// notPlainRequests are just outside the shape: the schema judges them.
var notPlainRequests = []string{
	`{"prompt":"x","max_tokens":0}`,
	`{"prompt":"x","max_tokens":1000001}`,
	`{"prompt":"x","max_tokens":64.0}`,
	`{"prompt":"x","max_tokens":6.4e1}`,
	`{"prompt":"x","temperature":2.5}`,
	`{"prompt":"x","temperature":2.0}`,
	`{"prompt":"x","temperature":-0}`,
	`{"prompt":"x","temperature":1.1234567}`,
	`{"prompt":"x","temperature":"1"}`,
	`{"prompt":""}`,
	`{"prompt":"x","prompt_pack_id":"PRM-A"}`,
	`{"prompt":"x","variables":{}}`,
	`{"variables":{}}`,
	`{}`,
	`{"prompt_pack_id":"PRM-"}`,
	`{"prompt_pack_id":"PRM-a"}`,
	`{"prompt_pack_id":"PRM-` + strings.Repeat("9", 125) + `"}`,
	`{"prompt":"x","provider_id":"Local"}`,
	`{"prompt":"x","model":""}`,
	`{"prompt":"x","model":"` + strings.Repeat("m", 257) + `"}`,
	`{"prompt":"x","work_order_id":"WO-2026126-001"}`,
	`{"prompt":"x","session_id":"SES-20261206-0A1B2C3D"}`,
	`{"prompt":"x","stream":"true"}`,
	`{"prompt":"x","mode":"fast"}`,
	`{"prompt":"x","decision_seq":-1}`,
	`{"prompt":"x","schema":[]}`,
	`{"prompt":"x","operation":"complete"}`,
	`{"prompt":"x","extra":1}`,
}

func completeValidators(t testing.TB) (*schema.Schema, func(any) error) {
	ours, err := schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(completeSchema)
	require.NoError(t, err)
	theirs, err := schematest.Oracle(completeSchema)
	require.NoError(t, err)
	return ours, theirs.Validate
}

// TestPlainComplete: what callers send is plain (no schema compiled for
// it); a request just outside the shape is judged by the schema, which
// still refuses what it refused.
func TestPlainComplete(t *testing.T) {
	ours, theirs := completeValidators(t)
	for _, doc := range plainRequests {
		v, err := jcs.Decode([]byte(doc))
		require.NoError(t, err, doc)
		require.True(t, plainComplete(cli.Request(v.(map[string]any))), doc)
		require.Empty(t, ours.Validate(v), doc)
		require.NoError(t, theirs(v), doc)
	}
	for _, doc := range notPlainRequests {
		v, err := jcs.Decode([]byte(doc))
		require.NoError(t, err, doc)
		require.False(t, plainComplete(cli.Request(v.(map[string]any))), doc)
	}
	// Flags arrive as the runner builds them: --max-tokens as a
	// json.Number, --temperature decoded JSON.
	require.True(t, plainComplete(cli.Request{"prompt": "hi", "max_tokens": json.Number("64"), "temperature": json.Number("0.7")}))
	require.False(t, plainComplete(cli.Request{"prompt": "hi", "max_tokens": json.Number("+64")}))
	require.False(t, plainComplete(cli.Request{"prompt": "hi", "max_tokens": int64(64)}))
}

// TestNotPlainStillJudged: a request outside the plain shape is refused
// by the schema as before (exit 3 from stdin, 2 from flags), before
// anything is reserved.
func TestNotPlainStillJudged(t *testing.T) {
	p := newPlane(t)
	for _, doc := range []string{`{"prompt":"x","prompt_pack_id":"PRM-A"}`, `{"prompt":"x","max_tokens":0}`, `{"prompt":"x","temperature":2.5}`, `{"prompt":"x","extra":1}`} {
		code, out, _ := p.call(doc)
		require.Equal(t, 3, code, "%s: %s", doc, out)
		require.Equal(t, "SCHEMA_VIOLATION", errCode(t, out), doc)
	}
	code, _, errOut := p.call("", "--prompt", "x", "--max-tokens", "0")
	require.Equal(t, 2, code, errOut)
	require.Empty(t, p.entries("LLM_RESERVED"))
}

// FuzzPlainComplete holds plainComplete to a subset of the request
// schema: what it accepts, our validator and jsonschema/v6 accept.
func FuzzPlainComplete(f *testing.F) {
	for _, doc := range append(plainRequests, notPlainRequests...) {
		f.Add([]byte(doc))
	}
	ours, theirs := completeValidators(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := jcs.Decode(b)
		if err != nil {
			return
		}
		req, ok := v.(map[string]any)
		if !ok || !plainComplete(cli.Request(req)) {
			return
		}
		require.Empty(t, ours.Validate(v), "plainComplete accepted %s", b)
		require.NoError(t, theirs(v), "plainComplete accepted %s", b)
	})
}
