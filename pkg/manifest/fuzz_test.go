package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

// FuzzParse checks that Parse never panics, refuses only with *Error, agrees
// with jsonschema/v6 on the schema, and that an accepted manifest survives
// Marshal and Parse unchanged, with a hash equal to that of its own text
// without metadata.
func FuzzParse(f *testing.F) {
	for _, doc := range schemaCorpus(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgreement(t, data)
		m, err := Parse(data)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e), "error %T: %v", err, err)
			return
		}
		h, err := m.Hash()
		require.NoError(t, err)

		v, err := jcs.Decode(data)
		require.NoError(t, err)
		delete(v.(map[string]any), "metadata")
		canon, err := jcs.Marshal(v)
		require.NoError(t, err)
		sum := sha256.Sum256(canon)
		require.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), h, "Hash differs from the hash of the text")

		out, err := m.Marshal()
		require.NoError(t, err)
		back, err := Parse(out)
		require.NoError(t, err, "Marshal output does not parse:\n%s", out)
		require.Equal(t, m, back)
		h2, err := back.Hash()
		require.NoError(t, err)
		require.Equal(t, h, h2)
	})
}

// FuzzParseDependency checks that ParseDependency never panics, accepts
// exactly what the schema's pattern accepts, round-trips through String,
// and that Allows never admits a string that is not a version.
func FuzzParseDependency(f *testing.F) {
	for _, s := range dependencyCorpus() {
		f.Add(s, "1.2.3")
	}
	for _, v := range versionCorpus() {
		f.Add("PKG-A@^1.0.0", v)
	}
	dep := schemaPattern(f, "properties", "dependencies", "items", "pattern")
	f.Fuzz(func(t *testing.T, s, version string) {
		d, err := ParseDependency(s)
		if (err == nil) != dep.MatchString(s) {
			t.Fatalf("dependency %q: ParseDependency error %v, schema pattern match %v", s, err, dep.MatchString(s))
		}
		if err != nil {
			return
		}
		require.Equal(t, s, d.String())
		if d.Allows(version) && !ValidVersion(version) {
			t.Fatalf("%s allows %q, which is not a version", s, version)
		}
	})
}
