package mock_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/llm/mock"
	"github.com/control-plane/cp/internal/llm/provider"
)

func request() provider.Request {
	return provider.Request{Model: "mock-1", System: "be brief", Prompt: "say   hi\nplease", MaxTokens: 256}
}

func TestMock(t *testing.T) {
	p := mock.Provider{}
	ctx := context.Background()
	a, err := p.Complete(ctx, request())
	require.NoError(t, err)
	b, err := p.Complete(ctx, request())
	require.NoError(t, err)
	require.Equal(t, a, b, "a pure function of the request")
	require.Regexp(t, `^mock reply [0-9a-f]{12}: say hi please$`, a.Text)
	require.Equal(t, "mock", a.Provider)
	require.Equal(t, "mock-1", a.Model)
	require.Equal(t, []string{"end_turn"}, a.FinishReasons)
	// input: 2 ("be brief") + 4 + 4 ("say   hi\nplease", 15 bytes); output: a byte in four
	require.Equal(t, provider.Usage{InputTokens: 2 + 4 + 4, OutputTokens: int64((len(a.Text) + 3) / 4)}, a.Usage)
	require.Len(t, a.Attempts, 1)

	other := request()
	other.System = "be long"
	c, err := p.Complete(ctx, other)
	require.NoError(t, err)
	require.NotEqual(t, a.Text, c.Text, "another request, another answer")

	short := request()
	short.MaxTokens = 3
	d, err := p.Complete(ctx, short)
	require.NoError(t, err)
	require.Equal(t, []string{"max_tokens"}, d.FinishReasons)
	require.Equal(t, int64(3), d.Usage.OutputTokens)
	require.Equal(t, "mock reply ", d.Text[:11])
	require.Len(t, d.Text, 12, "cut at max_tokens × 4 bytes")

	bad := request()
	bad.MaxTokens = 0
	_, err = p.Complete(ctx, bad)
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeRequestInvalid, pe.Code())
}

func TestMockStream(t *testing.T) {
	p := mock.Provider{ChunkBytes: 5}
	var got strings.Builder
	n := 0
	resp, err := p.Stream(context.Background(), request(), func(d provider.Delta) error {
		got.WriteString(d.Text)
		n++
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, resp.Text, got.String())
	require.Equal(t, (len(resp.Text)+4)/5, n)
	whole, err := p.Complete(context.Background(), request())
	require.NoError(t, err)
	require.Equal(t, whole, resp, "streamed or not, the same answer")

	// A caller that hangs up after two deltas: CANCELLED, charged for
	// the input and the ten bytes sent (three tokens).
	n = 0
	_, err = p.Stream(context.Background(), request(), func(provider.Delta) error {
		n++
		if n == 3 {
			return errors.New("gone")
		}
		return nil
	})
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeCancelled, pe.Code())
	require.Equal(t, provider.Usage{InputTokens: 10, OutputTokens: 3}, pe.Usage)
	require.Equal(t, whole.Text[:10], pe.Text)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Stream(ctx, request(), func(provider.Delta) error { return nil })
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeCancelled, pe.Code())
	require.Equal(t, provider.Usage{InputTokens: 10}, pe.Usage)
}

func TestMockStructured(t *testing.T) {
	schema := map[string]any{
		"type": "object", "required": []any{"label", "score", "tags", "ok", "kind", "ref"}, "additionalProperties": false,
		"properties": map[string]any{
			"label": map[string]any{"type": "string", "minLength": 8},
			"score": map[string]any{"type": "integer", "minimum": 3},
			"tags":  map[string]any{"type": "array", "minItems": 2, "items": map[string]any{"enum": []any{"a", "b"}}},
			"ok":    map[string]any{"type": "boolean"},
			"kind":  map[string]any{"const": "x"},
			"ref":   map[string]any{"$ref": "#/$defs/n"},
		},
		"$defs": map[string]any{"n": map[string]any{"anyOf": []any{map[string]any{"type": "null"}, map[string]any{"type": "string"}}}},
	}
	req := request()
	req.Schema = schema
	resp, err := mock.Provider{}.Complete(context.Background(), req)
	require.NoError(t, err)
	require.JSONEq(t, `{"label":"mock----","score":3,"tags":["a","a"],"ok":false,"kind":"x","ref":null}`, resp.Text)
	require.NotNil(t, resp.Output)

	// Cut by max_tokens, the answer is no longer JSON: LLM_OUTPUT_INVALID,
	// with the usage (the call is charged all the same).
	req.MaxTokens = 2
	_, err = mock.Provider{}.Complete(context.Background(), req)
	var pe *provider.Error
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeOutputInvalid, pe.Code())
	require.Equal(t, int64(2), pe.Usage.OutputTokens)

	req.Schema = map[string]any{"type": "object", "dependentRequired": map[string]any{}}
	_, err = mock.Provider{}.Complete(context.Background(), req)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, provider.CodeSchemaUnsupported, pe.Code())
}
