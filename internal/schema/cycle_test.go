package schema

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

// cyclic are schemas whose $refs loop back to where they started without
// descending into the instance: validating anything against them recursed
// until the goroutine's stack overflowed, a fatal error no recover catches
// (exit 2, "usage", in our table). A request's output schema (cp-llm
// complete output_schema: any caller allowed llm, a worker included) or a
// prompt pack's variables schema reached it: one request crashed cp-llm,
// or cp-mcp serve with every agent's session.
var cyclic = []string{
	`{"$ref":"#"}`,
	`{"allOf":[{"$ref":"#"}]}`,
	`{"anyOf":[{"$ref":"#"}]}`,
	`{"oneOf":[{"type":"string"},{"$ref":"#"}]}`,
	`{"not":{"$ref":"#"}}`,
	`{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"not":{"allOf":[{"$ref":"#/$defs/a"}]}}},"properties":{"x":{"$ref":"#/$defs/a"}}}`,
	`{"type":"object","properties":{"x":{"anyOf":[{"$ref":"#/properties/x"}]}}}`,
}

// TestRefCycleRefused: a compiler that resolves $refs at compile refuses
// a cycle that consumes no instance; recursion that descends (a property,
// an item) is fine, however deep the instance.
func TestRefCycleRefused(t *testing.T) {
	for _, doc := range cyclic {
		_, err := CompileDocument("urn:t/", "d.json", []byte(doc))
		require.ErrorContains(t, err, "cycle", doc)
	}
	s, err := CompileDocument("urn:t/", "d.json", []byte(`{"type":"object","properties":{"x":{"anyOf":[{"type":"null"},{"$ref":"#"}]}},"additionalProperties":false}`))
	require.NoError(t, err)
	var v any = nil
	for range 500 {
		v = map[string]any{"x": v}
	}
	require.True(t, s.Valid(v))
	require.False(t, s.Valid(map[string]any{"x": map[string]any{"y": 1}}))
}

// TestRefCycleLazy: with lazy $refs the cycle is met while validating: a
// Broken problem, never a crash, under not and anyOf too.
func TestRefCycleLazy(t *testing.T) {
	for _, doc := range cyclic {
		fsys := fstest.MapFS{"d.json": {Data: []byte(doc)}}
		s, err := NewCompiler(fsys, base).LazyRefs().Compile("d.json")
		require.NoError(t, err, doc)
		s.Validate("s") // returns, whether it reaches the cycle or not
		p := s.Validate(map[string]any{"x": "s"})
		require.NotEmpty(t, p, doc)
		require.True(t, p[len(p)-1].Broken || p[0].Broken, "%s: %v", doc, p)
		require.ErrorContains(t, s.Resolve(), "cycle", doc)
	}
}

// TestValidationCostBounded: a schema small enough to send in a request
// whose branches multiply (each oneOf tries both branches of a chain of
// definitions, or of an instance's nesting) would take 2^n steps; a
// validation's work is bounded by its instance's size, and a schema that
// needs more is refused (Broken), in well under a second.
func TestValidationCostBounded(t *testing.T) {
	var defs []string
	for i := range 60 {
		defs = append(defs, fmt.Sprintf(`"d%d":{"oneOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, `"d60":{"type":"string"}`)
	chain := `{"$defs":{` + strings.Join(defs, ",") + `},"$ref":"#/$defs/d0"}`
	nested := `{"oneOf":[{"type":"object","properties":{"x":{"$ref":"#"}}},{"type":"object","properties":{"x":{"$ref":"#"}}},{"type":"null"}]}`
	var deep any = nil
	for range 80 {
		deep = map[string]any{"x": deep}
	}
	for _, tc := range []struct {
		doc string
		v   any
	}{{chain, "s"}, {chain, 1}, {nested, deep}} {
		s, err := CompileDocument("urn:t/", "d.json", []byte(tc.doc))
		require.NoError(t, err)
		start := time.Now()
		p := s.Validate(tc.v)
		require.Less(t, time.Since(start), 5*time.Second)
		require.NotEmpty(t, p)
		require.True(t, p[len(p)-1].Broken || p[0].Broken, "%v", p)
	}
}
