package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/control-plane/cp/internal/trust"
)

const (
	testVerifier = "plane-a-auth+1f3d4c10+AZsQ8vMWQhKrSJ2iU0n1kszl5mpmcoX7LhdRSNIWwI5e"
)

func trustedFile(t testing.TB, body string) string {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "config"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, filepath.FromSlash(trust.File)), []byte(body), 0o644))
	return root
}

// TestTrustedKeysAgreesWithTrust: the lean decoder of trusted_keys.json
// refuses what trust.Load refuses, and finds the auth keys it finds.
func TestTrustedKeysAgreesWithTrust(t *testing.T) {
	_, priv := testKey(t)
	vkey, err := VerifierOf(priv, "plane-a-auth")
	require.NoError(t, err)
	entry := func(extra string) string {
		return `{"keys":[{"name":"plane-a-auth","key":"` + vkey + `","purposes":["auth"]` + extra + `}]}`
	}
	for _, tc := range []struct {
		name, body string
		keys       int
	}{
		{"one auth key", entry(""), 1},
		{"with added_at", entry(`,"added_at":"2026-12-06T00:00:00Z"`), 1},
		{"not for auth", strings.Replace(entry(""), `"auth"`, `"package"`, 1), 0},
		{"no keys", `{"keys":[]}`, 0},
		{"unknown field", entry(`,"trust":"yes"`), -1},
		{"unknown top-level field", `{"keys":[],"x":1}`, -1},
		{"unknown purpose", strings.Replace(entry(""), `"auth"`, `"everything"`, 1), -1},
		{"repeated purpose", strings.Replace(entry(""), `["auth"]`, `["auth","auth"]`, 1), -1},
		{"name differs from the key's", strings.Replace(entry(""), `"name":"plane-a-auth"`, `"name":"other"`, 1), -1},
		{"bad added_at", entry(`,"added_at":"yesterday"`), -1},
		{"not JSON", `{"keys":`, -1},
		{"keys missing", `{}`, -1},
		{"duplicate member", `{"keys":[],"keys":[]}`, -1},
		{"trailing data", entry("") + `{}`, -1},
		{"a key not an object", `{"keys":[1]}`, -1},
		{"keys not a list", `{"keys":{}}`, -1},
		{"name null", strings.Replace(entry(""), `"name":"plane-a-auth"`, `"name":null`, 1), -1},
		{"purposes not a list", strings.Replace(entry(""), `["auth"]`, `"auth"`, 1), -1},
		{"a purpose not a string", strings.Replace(entry(""), `["auth"]`, `["auth",1]`, 1), -1},
		{"added_at null", entry(`,"added_at":null`), -1},
		{"a member in another case", strings.Replace(entry(""), `"name"`, `"Name"`, 1), -1},
		{"duplicate member in a key", entry(`,"name":"plane-a-auth"`), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := trustedFile(t, tc.body)
			got, err := TrustedKeys(root)
			_, terr := trust.Load(root)
			if tc.keys < 0 {
				require.Error(t, err)
				require.Error(t, terr, "trust.Load must refuse it too")
				return
			}
			require.NoError(t, err)
			require.NoError(t, terr)
			require.Len(t, got, tc.keys)
		})
	}
}

// FuzzTrustedKeys: whatever trusted_keys.json holds, the lean decoder never
// finds an auth key in a file trust.Load refuses.
func FuzzTrustedKeys(f *testing.F) {
	f.Add(`{"keys":[{"name":"plane-a-auth","key":"` + testVerifier + `","purposes":["auth"]}]}`)
	f.Add(`{"keys":[]}`)
	f.Fuzz(func(t *testing.T, body string) {
		root := trustedFile(t, body)
		got, err := TrustedKeys(root)
		if err != nil || len(got) == 0 {
			return
		}
		if _, terr := trust.Load(root); terr != nil {
			t.Fatalf("auth keys found in a file trust.Load refuses (%v): %q", terr, body)
		}
	})
}
