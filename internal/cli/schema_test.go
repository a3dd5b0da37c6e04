package cli

import (
	"testing/fstest"

	"github.com/control-plane/cp/internal/schema"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// oracle compiles an embedded schema with santhosh-tekuri/jsonschema/v6, the
// reference implementation our validator must agree with.
func oracle(t testing.TB, name string) *jsonschema.Schema {
	s, err := schematest.Oracle(name)
	require.NoError(t, err, "v6 must compile %s", name)
	return s
}

// Every embedded schema compiles under both validators.
func TestSchemasCompile(t *testing.T) {
	names, err := SchemaNames()
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			oracle(t, n)
			s, err := compileSchema(n)
			require.NoError(t, err)
			require.NoError(t, s.Resolve(), "every $ref resolves and compiles")
		})
	}
}

// corpus holds instances around the edges of the request schemas.
var corpus = []string{
	`{}`, `[]`, `null`, `"x"`, `1`,
	`{"event_type":"A"}`, `{"event_type":""}`, `{"event_type":1}`, `{"event_type":"A","zzz":1}`,
	`{"event_type":"A","prompts_used":["a","b"]}`, `{"event_type":"A","prompts_used":[""]}`, `{"event_type":"A","prompts_used":"a"}`,
	`{"event_type":"A","metadata":{"x":[1,2,{"y":null}]}}`, `{"event_type":"A","metadata":[]}`,
	`{"event_type":"A","seq":5,"id":"LED-1","entry_hash":"zz","actor":"a"}`,
	`{"seq":0}`, `{"seq":-1}`, `{"seq":1.0}`, `{"seq":1.5}`, `{"seq":1e2}`, `{"seq":"1"}`,
	`{"seq":3,"tree_size":1}`, `{"seq":3,"tree_size":0}`, `{"from":1,"to":2}`, `{"from":0}`,
	`{"plane":"ho3"}`, `{"plane":"ho4"}`, `{"ledger":""}`, `{"ledger":"a.jsonl"}`,
	`{"seq":"1:2"}`, `{"seq":":"}`, `{"seq":"a:b"}`, `{"where":".x"}`, `{"where":""}`, `{"limit":0}`, `{"limit":2}`,
	`{"legacy":true}`, `{"legacy":"yes"}`, `{"proof":["00"]}`,
	`{"proof":["` + strings.Repeat("a", 64) + `"],"leaf_hash":"` + strings.Repeat("b", 64) + `"}`,
	`{"parent_hash":""}`, `{"parent_hash":"` + strings.Repeat("A", 64) + `"}`, `{"origin":" x"}`, `{"origin":"x"}`,
	`{"event_type":"` + strings.Repeat("é", 256) + `"}`, `{"event_type":"` + strings.Repeat("é", 257) + `"}`,
}

func checkAgreement(t testing.TB, name string, doc []byte) {
	v, err := jcs.Decode(doc)
	if err != nil {
		return
	}
	ours, err := compileSchema(name)
	require.NoError(t, err)
	theirs := oracle(t, name)
	want := theirs.Validate(v) == nil
	got := ours.Valid(v)
	if got != want {
		t.Fatalf("%s on %s: ours valid=%v, v6 valid=%v (%v)", name, doc, got, want, theirs.Validate(v))
	}
}

func TestSchemaAgreesWithV6(t *testing.T) {
	names, _ := SchemaNames()
	for _, n := range names {
		for _, doc := range corpus {
			checkAgreement(t, n, []byte(doc))
		}
	}
}

// FuzzSchemaAgreement checks our validator and jsonschema/v6 accept exactly
// the same instances of every embedded schema.
func FuzzSchemaAgreement(f *testing.F) {
	for _, doc := range corpus {
		f.Add([]byte(doc))
	}
	names, _ := SchemaNames()
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, n := range names {
			checkAgreement(t, n, doc)
		}
	})
}

// TestValidateBrokenSchemaInternal: a request that reaches a $ref of the
// embedded schemas that does not resolve (a build whose schemas
// TestSchemasCompile would refuse) is refused as INTERNAL (exit 5), the
// schema's fault, never accepted, and never blamed on the request as a
// SCHEMA_VIOLATION; a negation around the broken $ref does not accept it.
func TestValidateBrokenSchemaInternal(t *testing.T) {
	fsys := fstest.MapFS{
		"x.request.json": {Data: []byte(`{"type":"object","properties":{"a":{"not":{"$ref":"gone.json"}},"b":{"type":"string"}}}`)},
	}
	s, err := schema.NewCompiler(fsys, "https://example.test/").LazyRefs().Compile("x.request.json")
	require.NoError(t, err)
	verb := &Verb{Name: "x", Schema: "x.request.json"}
	require.NoError(t, validate(s, verb, Request{"b": "y"}), "a request that does not reach the $ref is judged as before")
	err = validate(s, verb, Request{"b": 1})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "SCHEMA_VIOLATION", e.Code)
	err = validate(s, verb, Request{"a": "anything"})
	require.ErrorAs(t, err, &e)
	require.Equal(t, "INTERNAL", e.Code, "%v", err)
	require.Equal(t, ExitInternal, e.Exit)
	require.Contains(t, e.Message, "gone.json")
}
