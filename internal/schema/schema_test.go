package schema

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/pkg/jcs"
)

const base = "https://example.test/schemas/"

func compile(t *testing.T, doc string) (*Schema, error) {
	t.Helper()
	fsys := fstest.MapFS{"s.json": {Data: []byte(doc)}}
	return NewCompiler(fsys, base).Compile("s.json")
}

// A pattern is compiled on its first match, but a bad one is still a
// compile error of the schema, and a match is still exact.
func TestPatternLazy(t *testing.T) {
	_, err := compile(t, `{"type":"string","pattern":"^SES-[0-9"}`)
	require.ErrorContains(t, err, "pattern")

	s, err := compile(t, `{"type":"object","properties":{"id":{"type":"string","pattern":"^SES-[0-9]{8}-[0-9a-f]{8}$"}}}`)
	require.NoError(t, err)
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"SES-20261206-0a1b2c3d", true},
		{"SES-20261206-0A1B2C3D", false},
		{"SES-2026120-0a1b2c3d", false},
		{"xSES-20261206-0a1b2c3d", false},
		{"SES-20261206-0a1b2c3d\n", false},
	} {
		require.Equal(t, tc.ok, s.Valid(map[string]any{"id": tc.id}), "%q", tc.id)
	}
	require.True(t, s.Valid(map[string]any{}), "a member that is absent is not matched")

	// Validations from several goroutines (a stream's workers) share it.
	s, err = compile(t, `{"type":"string","pattern":"^[a-z]+$"}`)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			require.Equal(t, i%2 == 0, s.Valid(map[bool]string{true: "abc", false: "ABC"}[i%2 == 0]))
		})
	}
	wg.Wait()
}

// With LazyRefs, a $ref resolves when a validation first reaches it: a
// definition no instance uses is never decoded or compiled, a broken one
// fails the validations that reach it (and Resolve), and the answers are
// those of an eager compile.
func TestLazyRefs(t *testing.T) {
	fsys := fstest.MapFS{
		"s.json":   {Data: []byte(`{"type":"object","properties":{"a":{"$ref":"d.json#/$defs/a"},"b":{"$ref":"bad.json"},"c":{"$ref":"#/$defs/c"},"n":{"$ref":"#"}},"$defs":{"c":{"type":"integer"}},"additionalProperties":false}`)},
		"d.json":   {Data: []byte(`{"$defs":{"a":{"type":"string","minLength":2}}}`)},
		"bad.json": {Data: []byte(`{"type":"string","minLenght":2}`)},
	}
	_, err := NewCompiler(fsys, base).Compile("s.json")
	require.ErrorContains(t, err, "minLenght", "eager: a broken $ref is a compile error")

	c := NewCompiler(fsys, base).LazyRefs()
	s, err := c.Compile("s.json")
	require.NoError(t, err)
	require.Empty(t, c.docs[base+"d.json"], "nothing referenced is decoded at compile")
	for _, tc := range []struct {
		v  map[string]any
		ok bool
	}{
		{map[string]any{}, true},
		{map[string]any{"c": 1}, true},
		{map[string]any{"c": "x"}, false},
		{map[string]any{"a": "xy"}, true},
		{map[string]any{"a": "x"}, false},
		{map[string]any{"n": map[string]any{"a": "xy", "n": map[string]any{"c": 2}}}, true},
		{map[string]any{"n": map[string]any{"c": true}}, false},
		{map[string]any{"z": 1}, false},
		{map[string]any{"b": "xy"}, false}, // fails closed: the $ref does not compile
	} {
		require.Equal(t, tc.ok, s.Valid(tc.v), "%v", tc.v)
	}
	require.Nil(t, c.nodes[base+"bad.json"], "a node that failed to compile is not kept")
	p := s.Validate(map[string]any{"b": "xy"})
	require.Len(t, p, 1)
	require.Contains(t, p[0].Message, "schema error")
	require.ErrorContains(t, s.Resolve(), "minLenght")

	// Validations from several goroutines resolve a $ref once.
	s, err = NewCompiler(fsys, base).LazyRefs().Compile("s.json")
	require.NoError(t, err)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			require.Equal(t, i%2 == 0, s.Valid(map[string]any{"a": map[bool]string{true: "xy", false: "x"}[i%2 == 0]}))
		})
	}
	wg.Wait()
	fsys["bad.json"] = &fstest.MapFile{Data: []byte(`{"type":"string"}`)}
	s, err = NewCompiler(fsys, base).LazyRefs().Compile("s.json")
	require.NoError(t, err)
	require.NoError(t, s.Resolve())
}

// TestCompileDocument: one caller's document compiles and validates; a
// $ref can point only inside it (another name under the base, or another
// base, is refused at compile, never read from anywhere).
func TestCompileDocument(t *testing.T) {
	s, err := CompileDocument("urn:t/", "d.json", []byte(`{"type":"object","properties":{"n":{"$ref":"#/$defs/n"}},"$defs":{"n":{"type":"integer"}}}`))
	require.NoError(t, err)
	require.True(t, s.Valid(map[string]any{"n": float64(1)}))
	require.False(t, s.Valid(map[string]any{"n": "x"}))
	for _, doc := range []string{
		`{"$ref":"other.json"}`,
		`{"$ref":"urn:elsewhere/x.json"}`,
		`{"properties":{"a":{"$ref":"d.json#/$defs/missing"}}}`,
	} {
		_, err := CompileDocument("urn:t/", "d.json", []byte(doc))
		require.Error(t, err, doc)
	}
	_, err = CompileDocument("urn:t/", "d.json", []byte(`{"type":`))
	require.Error(t, err)
}

// TestLazyRefBrokenUnderNegation: a $ref that does not resolve fails the
// validation that reaches it whatever encloses it. Under not, anyOf or
// oneOf the failing branch alone used to count as "does not match", so
// {"not":{"$ref":broken}} accepted every instance and a broken branch of
// anyOf left the others to accept: fail open where the eager compiler
// refused the schema outright. The problem is marked Broken (the schema's
// fault, not the instance's).
func TestLazyRefBrokenUnderNegation(t *testing.T) {
	fsys := fstest.MapFS{
		"not.json":   {Data: []byte(`{"not":{"$ref":"bad.json"}}`)},
		"any.json":   {Data: []byte(`{"anyOf":[{"$ref":"missing.json"},{"type":"string"}]}`)},
		"one.json":   {Data: []byte(`{"oneOf":[{"$ref":"bad.json"},{"type":"string"}]}`)},
		"deep.json":  {Data: []byte(`{"properties":{"a":{"not":{"not":{"$ref":"bad.json"}}}}}`)},
		"ok.json":    {Data: []byte(`{"not":{"$ref":"good.json"}}`)},
		"good.json":  {Data: []byte(`{"type":"integer"}`)},
		"bad.json":   {Data: []byte(`{"type":"string","minLenght":2}`)},
		"patt.json":  {Data: []byte(`{"not":{"type":"string","pattern":"^a"}}`)},
		"cycle.json": {Data: []byte(`{"anyOf":[{"$ref":"#/$defs/x"},{"type":"null"}],"$defs":{"x":{"$ref":"nowhere.json#/y"}}}`)},
	}
	for _, tc := range []struct {
		name string
		v    any
	}{
		{"not.json", "x"}, {"not.json", nil}, {"any.json", "x"}, {"one.json", "x"},
		{"deep.json", map[string]any{"a": "x"}}, {"cycle.json", nil},
	} {
		s, err := NewCompiler(fsys, base).LazyRefs().Compile(tc.name)
		require.NoError(t, err, tc.name)
		p := s.Validate(tc.v)
		require.NotEmpty(t, p, "%s accepted %v through a $ref that does not resolve", tc.name, tc.v)
		require.True(t, slices.ContainsFunc(p, func(p Problem) bool { return p.Broken }), "%s: %v", tc.name, p)
	}
	// A $ref that resolves keeps its meaning under not.
	s, err := NewCompiler(fsys, base).LazyRefs().Compile("ok.json")
	require.NoError(t, err)
	require.True(t, s.Valid("x"))
	require.False(t, s.Valid(json.Number("1")))
	// Ordinary failures under not are not Broken.
	s, err = NewCompiler(fsys, base).LazyRefs().Compile("patt.json")
	require.NoError(t, err)
	require.True(t, s.Valid("b"))
	p := s.Validate("a")
	require.Len(t, p, 1)
	require.False(t, p[0].Broken)
}

// TestYesNoBranches: the branches of anyOf, oneOf and not are validated
// for a yes or no only (their failures counted, not described), and give
// the verdicts they gave; what the instance is refused for is still
// described where it is.
func TestYesNoBranches(t *testing.T) {
	s, err := CompileDocument("urn:t/", "d.json", []byte(`{"type":"object","properties":{
		"one":{"oneOf":[{"type":"string","pattern":"^a+$"},{"type":"integer","minimum":3}]},
		"any":{"anyOf":[{"type":"string","minLength":2},{"type":"null"}]},
		"not":{"not":{"type":"object","required":["k"]}},
		"both":{"oneOf":[{"type":"integer"},{"type":"number"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc  string
		path string // "" valid
	}{
		{`{"one":"aaa","any":"xy","not":{},"both":1.5}`, ""},
		{`{"one":4}`, ""},
		{`{"one":"b"}`, "/one"},
		{`{"one":2}`, "/one"},
		{`{"any":"x"}`, "/any"},
		{`{"any":null}`, ""},
		{`{"not":{"k":1}}`, "/not"},
		{`{"both":1}`, "/both"}, // both branches hold: not exactly one
	} {
		v, err := jcs.Decode([]byte(tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		ps := s.Validate(v)
		switch {
		case tc.path == "" && len(ps) > 0:
			t.Errorf("%s: got %v, want valid", tc.doc, ps)
		case tc.path != "" && (len(ps) != 1 || ps[0].Path != tc.path || ps[0].Message == "invalid" || ps[0].Message == ""):
			t.Errorf("%s: got %v, want one described problem at %s", tc.doc, ps, tc.path)
		}
	}
}
