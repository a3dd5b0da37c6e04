package config

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzProvidersOf holds providersOf to the strict decode it replaces: on
// every file providers.schema.json accepts, both succeed with the same
// ProvidersDoc, or both fail.
func FuzzProvidersOf(f *testing.F) {
	f.Add(DefaultProviders)
	f.Add([]byte(`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://localhost:11434","api_key_env":"K","models":[{"id":"m","input_usd_per_mtok":"1.5","output_usd_per_mtok":"2","max_tokens":4096}]}],"caps":{"plane_micro_usd":5,"providers":{"o":1},"subjects":{"s":2}}}`))
	f.Add([]byte(`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0","max_tokens":1e3}]}],"caps":{}}`))
	f.Add([]byte(`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0","max_tokens":99999999999999999999}]}]}`))
	f.Add([]byte(`{"default_provider":"o","providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"caps":{"providers":{},"subjects":{"a":0,"b":12}}}`))
	f.Add([]byte(`{"default_provider":"o","providers":[{"id":"x","type":"openai","base_url":"http://a","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"providers":[{"id":"o","type":"mock","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`))
	s, err := schemaFor(schemaNames[ProvidersPath])
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(&v) != nil || dec.More() || len(s.Validate(v)) > 0 || dupKeys(b) {
			// A repeated key: the strict decode merged the values (one the
			// schema never saw); providersOf builds the one it validated
			// (TestProvidersOfRepeatedKey).
			return
		}
		var want ProvidersDoc
		werr := strict(ProvidersPath, b, &want)
		got, gerr := providersOf(v)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("strict decode: %v; providersOf: %v", werr, gerr)
		}
		if werr == nil {
			require.Equal(t, &want, got)
		}
	})
}

// dupKeys reports whether an object of the JSON text b repeats a key.
func dupKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() bool
	walk = func() bool {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return false
				}
				if seen[k.(string)] {
					return true
				}
				seen[k.(string)] = true
				if walk() {
					return true
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for dec.More() {
				if walk() {
					return true
				}
			}
			_, _ = dec.Token()
		}
		return false
	}
	return walk()
}

// A repeated key: the value the schema validated (the last, as the
// generic decode keeps it) is the one built, never a merge with a value
// it did not see (the strict decode this replaces kept the first array's
// base_url in the second's provider).
func TestProvidersOfRepeatedKey(t *testing.T) {
	b := []byte(`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://elsewhere","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}],"providers":[{"id":"o","type":"openai","api_key_env":"K","models":[{"id":"m","input_usd_per_mtok":"0","output_usd_per_mtok":"0"}]}]}`)
	require.True(t, dupKeys(b))
	v, err := parse(ProvidersPath, b)
	require.NoError(t, err)
	require.Equal(t, "", v.(*ProvidersDoc).Providers[0].BaseURL)
	require.Equal(t, "K", v.(*ProvidersDoc).Providers[0].APIKeyEnv)
}

// The built-in default and a full file are built as the strict decode
// builds them.
func TestProvidersOf(t *testing.T) {
	for _, b := range [][]byte{DefaultProviders,
		[]byte(`{"default_provider":"o","providers":[{"id":"o","type":"openai","base_url":"http://localhost:11434","api_key_env":"K","models":[{"id":"m","input_usd_per_mtok":"1.5","output_usd_per_mtok":"2","max_tokens":4096}]}],"caps":{"plane_micro_usd":5,"providers":{"o":1},"subjects":{"s":2}}}`)} {
		v, err := parse(ProvidersPath, b)
		require.NoError(t, err)
		var want ProvidersDoc
		require.NoError(t, strict(ProvidersPath, b, &want))
		require.Equal(t, &want, v)
	}
	// What the types do not know is refused, as the strict decode refuses
	// it, even where a schema would let it by.
	for _, v := range []any{
		map[string]any{"default_provider": "o", "extra": true},
		map[string]any{"providers": []any{map[string]any{"id": "o", "region": "eu"}}},
		map[string]any{"providers": []any{map[string]any{"models": []any{map[string]any{"max_tokens": json.Number("1.5")}}}}},
		map[string]any{"caps": map[string]any{"plane_micro_usd": json.Number("9223372036854775808")}},
		map[string]any{"caps": map[string]any{"providers": []any{}}},
		map[string]any{"default_provider": json.Number("1")},
	} {
		_, err := providersOf(v)
		require.Error(t, err, "%v", v)
	}
}
