package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/schematest"
)

// plainPolicies are router_policy.json files of the plain shape: the
// built-in default, the benchmarks' policy, a file with every field.
var plainPolicies = []string{
	string(DefaultRouterPolicy),
	`{
  "routes": [
    {"name": "deploy", "when": ".intent == \"deploy\" and (.variables.service // \"\") != \"\"", "handler": "default", "mode": "llm_assisted", "prompt_pack_id": "PRM-DEPLOY"},
    {"name": "status", "when": ".intent == \"status\"", "handler": "default", "mode": "tools_first"},
    {"name": "billing", "when": "(.tags // []) | index(\"billing\") != null", "handler": "default", "mode": "tools_first", "prompt_pack_id": "PRM-BILL"}
  ],
  "deny": [
    {"when": ".user == \"mallory\"", "reason": "blocked"}
  ],
  "limits": {"llm_calls_per_session": 1000000},
  "classifier": {"prompt_pack_id": "PRM-ROUTER"},
  "default_route": {"handler": "default", "mode": "tools_first"}
}`,
	`{"routes":[],"deny":[],"limits":{},"classifier":{"prompt_pack_id":"PRM-9","threshold":0.75},"default_route":{"handler":"a.b_c-9","mode":"llm_assisted","prompt_pack_id":"PRM-A-1"}}`,
	`{"routes":[{"name":"","when":"true","handler":"h","mode":"tools_first","required_capabilities":[]},{"name":"ünï","when":".a == \"é\"","handler":"h","mode":"tools_first","required_capabilities":["x","y z"]}],` +
		`"limits":{"llm_calls_per_session":0},"classifier":{"prompt_pack_id":"PRM-X","threshold":1},"default_route":{"handler":"` + "h" + strings.Repeat("-", 127) + `","mode":"tools_first"}}`,
	`{"deny":[{"when":"` + strings.Repeat("a", 4096) + `","reason":"` + strings.Repeat("r", 512) + `"}],"classifier":{"prompt_pack_id":"PRM-` + strings.Repeat("Z", 124) + `","threshold":0},"default_route":{"handler":"h","mode":"tools_first"}}`,
}

// notPlainPolicies are files just outside the plain shape: the schema
// judges them (some valid, some not).
var notPlainPolicies = []string{
	`{"routes":[{"when":"` + strings.Repeat("é", 2049) + `","handler":"h","mode":"tools_first"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"","handler":"h","mode":"tools_first"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"true","handler":"H","mode":"tools_first"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"true","handler":"h","mode":"fast"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"true","mode":"tools_first"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"true","handler":"h","mode":"tools_first","weight":1}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"name":"` + strings.Repeat("é", 100) + `","when":"true","handler":"h","mode":"tools_first"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"true","handler":"h","mode":"tools_first","required_capabilities":[""]}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":[{"when":"true","handler":"h","mode":"tools_first","required_capabilities":null}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":null,"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"routes":{},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"deny":[{"when":"true"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"deny":[{"when":"true","reason":""}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"deny":[{"when":"true","reason":"` + strings.Repeat("r", 513) + `"}],"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"limits":{"llm_calls_per_session":1.0},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"limits":{"llm_calls_per_session":-1},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"limits":{"llm_calls_per_session":99999999999999999999},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"limits":{"per_user":1},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"limits":null,"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"threshold":0.5},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"prompt_pack_id":"PRM-X","threshold":1.5},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"prompt_pack_id":"PRM-X","threshold":1.0},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"prompt_pack_id":"PRM-X","threshold":5e-1},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"prompt_pack_id":"PRM-X","threshold":"0.5"},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"prompt_pack_id":"prm-x"},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"classifier":{"prompt_pack_id":"PRM-"},"default_route":{"handler":"h","mode":"tools_first"}}`,
	`{"default_route":{"handler":"h","mode":"tools_first","prompt_pack_id":"PRM-` + strings.Repeat("Z", 125) + `"}}`,
	`{"default_route":{"handler":"` + "h" + strings.Repeat("-", 128) + `","mode":"tools_first"}}`,
	`{"default_route":{"handler":"h"}}`,
	`{"default_route":null}`,
	`{"routes":[]}`,
	`{"default_route":{"handler":"h","mode":"tools_first"},"extra":1}`,
	`[]`,
}

// TestPlainRouterPolicy: the files operators and tests write are plain
// (no schema compiled for them), a file just outside the shape is judged
// by the schema with its message, and both ways refuse or accept alike.
func TestPlainRouterPolicy(t *testing.T) {
	s, err := schemaFor(schemaNames[RouterPolicyPath])
	require.NoError(t, err)
	for _, doc := range plainPolicies {
		v, ok := decodeNumbers(t, []byte(doc))
		require.True(t, ok, doc)
		require.True(t, plainRouterPolicy(v), doc)
		require.Empty(t, s.Validate(v), doc)
		_, err := parse(RouterPolicyPath, []byte(doc))
		require.NoError(t, err, doc)
	}
	for _, doc := range notPlainPolicies {
		v, ok := decodeNumbers(t, []byte(doc))
		require.True(t, ok, doc)
		require.False(t, plainRouterPolicy(v), doc)
		probs := s.Validate(v)
		_, err := parse(RouterPolicyPath, []byte(doc))
		if len(probs) > 0 {
			require.ErrorContains(t, err, "(schema router_policy.schema.json)", doc)
			require.ErrorContains(t, err, probs[0].Message, doc)
		}
	}
}

// TestRouterPolicyOfRefusal: a file the schema accepts and the types do
// not (an integer written 1.0, one past int64) is refused with the strict
// decode's own words, as before routerPolicyOf.
func TestRouterPolicyOfRefusal(t *testing.T) {
	for _, doc := range []string{
		`{"limits":{"llm_calls_per_session":1.0},"default_route":{"handler":"h","mode":"tools_first"}}`,
		`{"limits":{"llm_calls_per_session":99999999999999999999},"default_route":{"handler":"h","mode":"tools_first"}}`,
	} {
		var d RouterPolicyDoc
		want := strict(RouterPolicyPath, []byte(doc), &d)
		require.Error(t, want, doc)
		_, err := parse(RouterPolicyPath, []byte(doc))
		require.EqualError(t, err, want.Error(), doc)
	}
}

// FuzzPlainRouterPolicy holds plainRouterPolicy to a subset of the
// schema: what it accepts, our validator and jsonschema/v6 both accept.
func FuzzPlainRouterPolicy(f *testing.F) {
	for _, doc := range append(plainPolicies, notPlainPolicies...) {
		f.Add([]byte(doc))
	}
	ours, err := schemaFor(schemaNames[RouterPolicyPath])
	require.NoError(f, err)
	theirs, err := schematest.Oracle(schemaNames[RouterPolicyPath])
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := decodeNumbers(t, b)
		if !ok || !plainRouterPolicy(v) {
			return
		}
		require.Empty(t, ours.Validate(v), "plainRouterPolicy accepted %s", b)
		require.NoError(t, theirs.Validate(v), "plainRouterPolicy accepted %s", b)
	})
}

// FuzzRouterPolicyOf holds routerPolicyOf to the strict decode it
// replaces: on every file router_policy.schema.json accepts, both succeed
// with the same RouterPolicyDoc, or both fail.
func FuzzRouterPolicyOf(f *testing.F) {
	for _, doc := range append(plainPolicies, notPlainPolicies...) {
		f.Add([]byte(doc))
	}
	s, err := schemaFor(schemaNames[RouterPolicyPath])
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(&v) != nil || dec.More() || len(s.Validate(v)) > 0 || dupKeys(b) {
			// A repeated key: the strict decode merged the values (one the
			// schema never saw); routerPolicyOf builds the one it
			// validated, as providersOf does.
			return
		}
		var want RouterPolicyDoc
		werr := strict(RouterPolicyPath, b, &want)
		got, gerr := routerPolicyOf(v)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("strict decode: %v; routerPolicyOf: %v", werr, gerr)
		}
		if werr == nil {
			require.Equal(t, &want, got)
		}
	})
}

// A repeated key: the policy is the one the schema judged (the last
// value), not the strict decode's merge of the two, as for providers.json
// (TestProvidersOfRepeatedKey).
func TestRouterPolicyOfRepeatedKey(t *testing.T) {
	b := []byte(`{"default_route":{"handler":"a","mode":"tools_first","prompt_pack_id":"PRM-A"},"default_route":{"handler":"b","mode":"llm_assisted"}}`)
	require.True(t, dupKeys(b))
	v, err := parse(RouterPolicyPath, b)
	require.NoError(t, err)
	require.Equal(t, Target{Handler: "b", Mode: "llm_assisted"}, v.(*RouterPolicyDoc).DefaultRoute)
}

// The built-in default and a full file are built as the strict decode
// builds them, plain or not.
func TestRouterPolicyOf(t *testing.T) {
	for _, doc := range append(plainPolicies, notPlainPolicies[0], notPlainPolicies[6]) {
		v, err := parse(RouterPolicyPath, []byte(doc))
		require.NoError(t, err, doc)
		var want RouterPolicyDoc
		require.NoError(t, strict(RouterPolicyPath, []byte(doc), &want))
		require.Equal(t, &want, v, doc)
	}
}
