package trust

import (
	"errors"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

// FuzzParseTrusted checks that the trusted-keys parser never panics,
// refuses only with *Error, agrees with jsonschema/v6 on the schema,
// and that what it accepts yields verifiers for every purpose.
func FuzzParseTrusted(f *testing.F) {
	f.Add([]byte(trustedFile))
	for _, r := range trustRefusals {
		f.Add([]byte(r.doc))
	}
	theirs, err := trustOracle()
	require.NoError(f, err)
	ours, err := trustSchema()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, err := jcs.Decode(data); err == nil {
			verr := theirs.Validate(v)
			require.Equal(t, verr == nil, ours.Valid(v), "on %s: v6 says %v", data, verr)
		}
		ks, err := parse(data)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e), "error %T: %v", err, err)
			return
		}
		for _, p := range purposes {
			_, err := Verifiers(ks, p, "")
			require.NoError(t, err)
		}
	})
}
