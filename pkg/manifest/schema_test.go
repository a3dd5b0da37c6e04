package manifest

import (
	"encoding/json"
	"io/fs"
	"regexp"
	"testing"

	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/schemas"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// oracle compiles the manifest schema with santhosh-tekuri/jsonschema/v6,
// the reference implementation pkg/schema must agree with.
func oracle() (*jsonschema.Schema, error) { return schematest.Oracle(SchemaName) }

func TestSchemaCompiles(t *testing.T) {
	_, err := oracle()
	require.NoError(t, err, "v6 must compile %s", SchemaName)
	_, err = compiled()
	require.NoError(t, err)
}

// checkAgreement fails t when pkg/schema and v6 disagree on doc.
func checkAgreement(t testing.TB, doc []byte) {
	v, err := jcs.Decode(doc)
	if err != nil {
		return
	}
	theirs, err := oracle()
	require.NoError(t, err)
	ours, err := compiled()
	require.NoError(t, err)
	verr := theirs.Validate(v)
	if got, want := ours.Valid(v), verr == nil; got != want {
		t.Fatalf("on %s: pkg/schema valid=%v, v6 valid=%v (%v)", doc, got, want, verr)
	}
}

// schemaCorpus is every manifest the table tests use.
func schemaCorpus(t testing.TB) [][]byte {
	docs := [][]byte{[]byte(sample), []byte(sampleCanonical), []byte(`{}`), []byte(`[]`), []byte(`"x"`)}
	for _, r := range refusals(t) {
		docs = append(docs, r.doc)
	}
	for _, s := range append(dependencyCorpus(), versionCorpus()...) {
		docs = append(docs, mutate(t, set("dependencies", []any{s})), mutate(t, set("version", s)))
	}
	return docs
}

func TestSchemaAgreesWithV6(t *testing.T) {
	for _, doc := range schemaCorpus(t) {
		checkAgreement(t, doc)
	}
}

func dependencyCorpus() []string {
	return []string{
		"PKG-A", "PKG-A@>=1.0.0", "PKG-A@>=1.0.0,<2.0.0", "PKG-A@^0.0.1-rc.1", "PKG-A@~1.2.3-x.0.y",
		"PKG-", "PKG-a", "PKG-A@", "PKG-A@1.0.0", "PKG-A@>=1.0", "PKG-A@>=1.0.0,", "PKG-A@>=1.0.0+b",
		"PKG-A@>=01.0.0", "PKG-A@>=1.0.0-01", "PKG-A@>=1.0.0-", "PKG-A@>=1.0.0-a..b", "PKG-A@==1.0.0",
		"PKG-A@>=1.0.0\n", "PKG-A\n", "PKG-A@>=1.0.0@1", "PKG-A@<2.0.0-0", "PKG-A@=0.0.0-0A",
	}
}

func versionCorpus() []string {
	return []string{
		"0.0.0", "1.2.3", "1.2.3-rc.1", "1.2.3-0", "1.2.3--", "1.2.3-0a", "1.2.3-a-b.0.c",
		"v1.2.3", "1.2", "1", "1.2.3+b", "01.2.3", "1.02.3", "1.2.03", "1.2.3-01", "1.2.3-", "1.2.3-a..b",
		"1.2.3\n", " 1.2.3", "1.2.3-rc.1\n", "1.2.3-é", "",
	}
}

// schemaPattern returns the pattern at keys in the manifest schema file.
func schemaPattern(t testing.TB, keys ...string) *regexp.Regexp {
	b, err := fs.ReadFile(schemas.FS, SchemaName)
	require.NoError(t, err)
	var v any
	require.NoError(t, json.Unmarshal(b, &v))
	for _, k := range keys {
		v = v.(map[string]any)[k]
	}
	return regexp.MustCompile(v.(string))
}

// The schema's dependency and version patterns accept exactly what
// ParseDependency and the version rule accept, so that the schema alone
// tells other tools the truth.
func TestSchemaPatternsAgreeWithGo(t *testing.T) {
	dep := schemaPattern(t, "properties", "dependencies", "items", "pattern")
	for _, s := range dependencyCorpus() {
		_, err := ParseDependency(s)
		require.Equal(t, err == nil, dep.MatchString(s), "dependency %q: ParseDependency error %v", s, err)
	}
	ver := schemaPattern(t, "$defs", "version", "pattern")
	for _, s := range versionCorpus() {
		require.Equal(t, ValidVersion(s), ver.MatchString(s), "version %q", s)
	}
}
