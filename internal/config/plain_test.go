package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/schematest"
)

// plainFiles are providers.json files of the plain shape: the built-in
// default, the README's example, the tests' local servers, a file with
// every field and every cap.
var plainFiles = []string{
	string(DefaultProviders),
	`{
  "default_provider": "local",
  "providers": [
    {"id": "local", "type": "openai", "base_url": "http://localhost:11434",
     "models": [{"id": "llama3.2", "input_usd_per_mtok": "0", "output_usd_per_mtok": "0", "max_tokens": 4096}]},
    {"id": "claude", "type": "anthropic", "api_key_env": "ANTHROPIC_API_KEY",
     "models": [{"id": "claude-sonnet-4-5", "input_usd_per_mtok": "3", "output_usd_per_mtok": "15"}]},
    {"id": "mock", "type": "mock", "models": [{"id": "mock-1", "input_usd_per_mtok": "0", "output_usd_per_mtok": "0"}]}
  ],
  "caps": {"plane_micro_usd": 50000000, "providers": {"claude": 20000000}}
}`,
	`{"default_provider":"mock","providers":[{"id":"mock","type":"mock","models":[{"id":"mock-1","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]},` +
		`{"id":"local-openai","type":"openai","base_url":"http://127.0.0.1:39735","models":[{"id":"local-model","input_usd_per_mtok":"3","output_usd_per_mtok":"15","max_tokens":4096}]},` +
		`{"id":"local-anthropic","type":"anthropic","base_url":"http://127.0.0.1:39735","api_key_env":"LOCAL_ANTHROPIC_KEY","models":[{"id":"claude-local","input_usd_per_mtok":"3","output_usd_per_mtok":"15"}]}],` +
		`"caps":{"plane_micro_usd":0,"providers":{},"subjects":{"a":0,"b":12}}}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"https://api.example.com/v1?x=1#f","api_key_env":"_K9",` +
		`"models":[{"id":"gpt-4o/mini:2026","input_usd_per_mtok":"999999999.123456","output_usd_per_mtok":"0.5","max_tokens":1}]}],` +
		`"caps":{"plane_micro_usd":999999999999999999,"providers":{"o":1},"subjects":{"ünïcode subject":7}}}`,
	`{"default_provider":"` + "a" + strings.Repeat("-", 63) + `","providers":[{"id":"` + "a" + strings.Repeat("-", 63) +
		`","type":"mock","models":[{"id":"` + strings.Repeat("~", 256) + `","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
}

// notPlain are files just outside the plain shape: the schema judges
// them (some valid, some not).
var notPlain = []string{
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0","max_tokens":1.0}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0","max_tokens":0}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0","max_tokens":1000000000000000000}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"mödel","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m x","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"` + strings.Repeat("m", 257) + `","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"01","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"1.","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"1.1234567","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"1000000000","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock"}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"local","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"ftp://x","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://a b","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"openai","api_key_env":"k","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"openai","api_key_env":"9K","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"O","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"` + "a" + strings.Repeat("b", 64) + `","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[]}`,
	`{"default_provider":"o"}`,
	`{"providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"caps":null}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"caps":{"plane_micro_usd":-1}}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"caps":{"providers":{"o":null}}}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"caps":{"subjects":[]}}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"caps":{"other":1}}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"extra":1}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","region":"eu","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`,
	`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0","tier":1}]}]}`,
	`[]`,
}

func decodeNumbers(t testing.TB, b []byte) (any, bool) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if dec.Decode(&v) != nil || dec.More() {
		return nil, false
	}
	return v, true
}

// TestPlainProviders: the files operators and tests write are plain (no
// schema compiled for them), a file just outside the shape is judged by
// the schema with its message, and both ways refuse or accept alike.
func TestPlainProviders(t *testing.T) {
	s, err := schemaFor(schemaNames[ProvidersPath])
	require.NoError(t, err)
	for _, doc := range plainFiles {
		v, ok := decodeNumbers(t, []byte(doc))
		require.True(t, ok, doc)
		require.True(t, plainProviders(v), doc)
		require.Empty(t, s.Validate(v), doc)
	}
	for _, doc := range notPlain {
		v, ok := decodeNumbers(t, []byte(doc))
		require.True(t, ok, doc)
		require.False(t, plainProviders(v), doc)
		probs := s.Validate(v)
		_, err := parse(ProvidersPath, []byte(doc))
		if len(probs) > 0 {
			require.ErrorContains(t, err, "(schema providers.schema.json)", doc)
			require.ErrorContains(t, err, probs[0].Message, doc)
		}
	}
}

// FuzzPlainProviders holds plainProviders to a subset of the schema: what
// it accepts, our validator and jsonschema/v6 both accept.
func FuzzPlainProviders(f *testing.F) {
	for _, doc := range append(plainFiles, notPlain...) {
		f.Add([]byte(doc))
	}
	ours, err := schemaFor(schemaNames[ProvidersPath])
	require.NoError(f, err)
	theirs, err := schematest.Oracle(schemaNames[ProvidersPath])
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := decodeNumbers(t, b)
		if !ok || !plainProviders(v) {
			return
		}
		require.Empty(t, ours.Validate(v), "plainProviders accepted %s", b)
		require.NoError(t, theirs.Validate(v), "plainProviders accepted %s", b)
	})
}
