package trust

import (
	"errors"
	"testing"

	"github.com/control-plane/cp/pkg/jcs"
	"github.com/stretchr/testify/require"
)

// FuzzParseTrusted checks that the trusted-keys parser never panics,
// refuses only with *Error, agrees with jsonschema/v6 on the schema,
// that what it accepts yields verifiers for every purpose, and that
// plainShape accepts only what the schema does.
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
			if plainShape(v) {
				require.NoError(t, verr, "plainShape accepted %s", data)
			}
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

// TestPlainShape: the files the tools write take the path that compiles
// no schema, and a file just outside the plain shape is still judged by
// the schema, with its message.
func TestPlainShape(t *testing.T) {
	v, err := jcs.Decode([]byte(trustedFile))
	require.NoError(t, err)
	require.True(t, plainShape(v), "the test plane's file is plain")
	for _, doc := range []string{
		`{"keys":[{"name":"a","key":"a+0123abcd+AAAA","purposes":["auth"],"added_at":"2026-12-06T15:00:00.5+01:00"}]}`,
		`{"keys":[]}`,
	} {
		v, err := jcs.Decode([]byte(doc))
		require.NoError(t, err)
		require.True(t, plainShape(v), doc)
	}
	for _, doc := range []string{
		`{"keys":[{"name":"a b","key":"a+0123abcd+AAAA","purposes":["auth"]}]}`,
		`{"keys":[{"name":"a","key":"a+0123ABCD+AAAA","purposes":["auth"]}]}`,
		`{"keys":[{"name":"a","key":"a+0123abcd+AAAA","purposes":[]}]}`,
		`{"keys":[{"name":"a","key":"a+0123abcd+AAAA","purposes":["root"]}]}`,
		`{"keys":[{"name":"a","key":"a+0123abcd+AAAA","purposes":["auth"],"added_at":"2026-12-06 15:00:00Z"}]}`,
		`{"keys":[{"name":"a","key":"a+0123abcd+AAAA","purposes":["auth"],"extra":1}]}`,
		`{"keys":[{"name":"a","key":"a+0123abcd+AAAA"}]}`,
		`{"keys":[],"more":1}`,
	} {
		v, err := jcs.Decode([]byte(doc))
		require.NoError(t, err)
		require.False(t, plainShape(v), doc)
		_, err = parse([]byte(doc))
		var e *Error
		require.True(t, errors.As(err, &e), "%s: %v", doc, err)
	}
}
