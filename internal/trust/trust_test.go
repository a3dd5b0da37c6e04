package trust

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/internal/schematest"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/keys"
	"github.com/control-plane/cp/pkg/pkgsig"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// Test keys, the same as pkg/pkgsig's, so that fuzz corpora stay
// reproducible. opsOld has the same name as ops but is another key.
const (
	opsSigner      = "PRIVATE+KEY+ops+9a953d33+AYYjsCbWSfW1pbK9KpI5sPN8799B8CIyhC71mF7kFlPw"
	rogueSigner    = "PRIVATE+KEY+rogue+644e746b+AaqHS3CIYLapfx8k1GQgQp8yNsuypTB1fQL0BaphWGVY"
	opsOldSigner   = "PRIVATE+KEY+ops+d3bf3b98+ATisNtGz53/hGKHS/sC/83KVxPNoT1N9eblAZ+6Tt5TK"
	opsVerifier    = "ops+9a953d33+AWriOtxQGb8MVhODStJyZ27yQtVSIpdvDt4YlfEIBtyC"
	rogueVerifier  = "rogue+644e746b+AX5iGkEGw6Xf/VIXtne6roKCHGHvKGfHTxhGrr6ZGkKE"
	opsOldVerifier = "ops+d3bf3b98+AW6JkNVSefxMMEKfIoOHfhmc/jZqrY9mjbflcUFofX4D"
)

var stmt = pkgsig.Statement{PackageID: "PKG-DEMO-001", Version: "1.2.0",
	ManifestHash: "sha256:" + strings.Repeat("1", 64), ArchiveHash: "sha256:" + strings.Repeat("a", 64)}

// sign signs s with the signer keys skeys.
func sign(t testing.TB, s pkgsig.Statement, skeys ...string) []byte {
	t.Helper()
	var signers []note.Signer
	for _, k := range skeys {
		n, err := note.NewSigner(k)
		require.NoError(t, err)
		signers = append(signers, n)
	}
	msg, err := note.Sign(&note.Note{Text: s.Text()}, signers...)
	require.NoError(t, err)
	return msg
}

const trustedFile = `{"keys": [
  {"name": "ops", "key": "` + opsVerifier + `", "purposes": ["package", "checkpoint"], "added_at": "2025-01-31T12:00:00Z"},
  {"name": "ops", "key": "` + opsOldVerifier + `", "purposes": ["checkpoint"]},
  {"name": "rogue", "key": "` + rogueVerifier + `", "purposes": ["work_order"], "added_at": "2025-01-31T12:00:00.5+01:00"}
]}
`

func writeTrusted(t *testing.T, body string) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "config"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "config", "trusted_keys.json"), []byte(body), 0o644))
	return root
}

func TestLoad(t *testing.T) {
	ks, err := Load(writeTrusted(t, trustedFile))
	require.NoError(t, err)
	require.Equal(t, []Key{
		{Name: "ops", Key: opsVerifier, Purposes: []string{"package", "checkpoint"}, AddedAt: "2025-01-31T12:00:00Z"},
		{Name: "ops", Key: opsOldVerifier, Purposes: []string{"checkpoint"}},
		{Name: "rogue", Key: rogueVerifier, Purposes: []string{"work_order"}, AddedAt: "2025-01-31T12:00:00.5+01:00"},
	}, ks)

	ks, err = Load(writeTrusted(t, `{"keys":[]}`))
	require.NoError(t, err)
	require.Empty(t, ks)
}

func TestLoadMissing(t *testing.T) {
	root := t.TempDir()
	ks, err := Load(root) // no config directory
	require.NoError(t, err)
	require.Empty(t, ks)
	require.NoError(t, os.Mkdir(filepath.Join(root, "config"), 0o755))
	ks, err = Load(root) // no file
	require.NoError(t, err)
	require.Empty(t, ks)
}

func TestLoadUnreadable(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "config", "trusted_keys.json"), 0o755))
	_, err := Load(root)
	require.Error(t, err, "a directory in place of the file")

	file := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err = Load(filepath.Dir(file))
	require.Error(t, err, "config is a file")
}

// trustRefusals lists trusted-keys files that must be refused, with the
// JSON pointer and a fragment of the reason.
var trustRefusals = []struct {
	name, doc, path, reason string
}{
	{"empty", ``, "", "not valid JSON"},
	{"truncated", trustedFile[:40], "", "not valid JSON"},
	{"duplicate member", `{"keys":[],"keys":[]}`, "", "duplicate key"},
	{"array", `[]`, "", "want object"},
	{"no keys", `{}`, "", `missing property "keys"`},
	{"keys null", `{"keys":null}`, "/keys", "want array"},
	{"unknown member", `{"keys":[],"version":1}`, "/version", "unknown property"},
	{"unknown entry member", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["package"],"expires":"x"}]}`, "/keys/0/expires", "unknown property"},
	{"entry not object", `{"keys":["` + opsVerifier + `"]}`, "/keys/0", "want object"},
	{"missing name", `{"keys":[{"key":"` + opsVerifier + `","purposes":["package"]}]}`, "/keys/0", `missing property "name"`},
	{"missing key", `{"keys":[{"name":"ops","purposes":["package"]}]}`, "/keys/0", `missing property "key"`},
	{"missing purposes", `{"keys":[{"name":"ops","key":"` + opsVerifier + `"}]}`, "/keys/0", `missing property "purposes"`},
	{"no purposes", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":[]}]}`, "/keys/0/purposes", "at least 1"},
	{"unknown purpose", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["everything"]}]}`, "/keys/0/purposes/0", "allowed values"},
	{"purpose twice", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["package","package"]}]}`, "/keys/0/purposes/1", "listed twice"},
	{"signer key", `{"keys":[{"name":"ops","key":"` + opsSigner + `","purposes":["package"]}]}`, "/keys/0/key", "pattern"},
	{"key bad base64", `{"keys":[{"name":"ops","key":"ops+9a953d33+AAAA","purposes":["package"]}]}`, "/keys/0/key", "not a note verifier key"},
	{"key wrong hash", `{"keys":[{"name":"ops","key":"` + strings.Replace(opsVerifier, "9a953d33", "9a953d34", 1) + `","purposes":["package"]}]}`,
		"/keys/0/key", "not a note verifier key"},
	{"name differs", `{"keys":[{"name":"ci","key":"` + opsVerifier + `","purposes":["package"]}]}`, "/keys/0/name", `differs from the key's own name "ops"`},
	{"name with plus", `{"keys":[{"name":"o+s","key":"` + opsVerifier + `","purposes":["package"]}]}`, "/keys/0/name", "pattern"},
	{"same key twice", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["package"]},{"name":"ops","key":"` + opsVerifier + `","purposes":["checkpoint"]}]}`,
		"/keys/1/key", "also /keys/0"},
	{"added_at date only", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["package"],"added_at":"2025-01-31"}]}`, "/keys/0/added_at", "pattern"},
	{"added_at impossible", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["package"],"added_at":"2025-02-30T00:00:00Z"}]}`, "/keys/0/added_at", "not an RFC 3339 time"},
	{"added_at number", `{"keys":[{"name":"ops","key":"` + opsVerifier + `","purposes":["package"],"added_at":1}]}`, "/keys/0/added_at", "want string"},
}

func TestLoadRefuses(t *testing.T) {
	for _, tt := range trustRefusals {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTrusted(t, tt.doc)
			ks, err := Load(root)
			require.Error(t, err)
			require.Nil(t, ks)
			var e *Error
			require.True(t, errors.As(err, &e), "error %T %v", err, err)
			require.Equal(t, "TRUSTED_KEYS_INVALID", e.Code())
			require.Equal(t, filepath.Join(root, "config", "trusted_keys.json"), e.File)
			require.Equal(t, tt.path, e.Path, "%v", err)
			require.Contains(t, e.Reason, tt.reason)
		})
	}
}

func TestVerifiers(t *testing.T) {
	ks, err := Load(writeTrusted(t, trustedFile))
	require.NoError(t, err)
	pkgSig := sign(t, stmt, opsSigner)
	oldSig := sign(t, stmt, opsOldSigner)
	rogueSig := sign(t, stmt, rogueSigner)

	verdict := func(v any, sig []byte) string {
		t.Helper()
		vs, err := Verifiers(ks, PurposePackage, v.(string))
		require.NoError(t, err)
		name, err := pkgsig.Verify(sig, stmt, vs)
		if err != nil {
			var e *pkgsig.Error
			require.True(t, errors.As(err, &e))
			return e.Code()
		}
		return "ok:" + name
	}
	// Purposes: ops is trusted for packages; ops (old) only for
	// checkpoints, rogue only for work orders.
	require.Equal(t, "ok:ops", verdict("", pkgSig))
	require.Equal(t, pkgsig.CodeUntrusted, verdict("", oldSig))
	require.Equal(t, pkgsig.CodeUntrusted, verdict("", rogueSig))

	// The environment key is trusted for every purpose, given as text or
	// as a path, and may repeat a listed key.
	require.Equal(t, "ok:rogue", verdict(rogueVerifier, rogueSig))
	path := filepath.Join(t.TempDir(), "rogue.pub")
	require.NoError(t, os.WriteFile(path, []byte(rogueVerifier+"\n"), 0o644))
	require.Equal(t, "ok:rogue", verdict(path, rogueSig))
	require.Equal(t, "ok:ops", verdict(opsVerifier, pkgSig))
	require.Equal(t, pkgsig.CodeUntrusted, verdict(rogueVerifier, oldSig))

	for _, purpose := range []string{PurposeCheckpoint, PurposeWorkOrder} {
		vs, err := Verifiers(ks, purpose, rogueVerifier)
		require.NoError(t, err)
		_, err = pkgsig.Verify(rogueSig, stmt, vs)
		require.NoError(t, err, purpose)
	}
	vs, err := Verifiers(ks, PurposeCheckpoint, "")
	require.NoError(t, err)
	_, err = pkgsig.Verify(oldSig, stmt, vs)
	require.NoError(t, err, "ops (old) is trusted for checkpoints")

	_, err = Verifiers(ks, "everything", "")
	require.Error(t, err)

	_, err = Verifiers(ks, PurposePackage, filepath.Join(t.TempDir(), "missing.pub"))
	var ke *keys.Error
	require.True(t, errors.As(err, &ke), "%v", err)
	_, err = Verifiers(ks, PurposePackage, opsSigner)
	require.Error(t, err, "a signer key is no verifier key")

	_, err = Verifiers([]Key{{Name: "x", Key: "x+00000000+AAAA", Purposes: []string{PurposePackage}}}, PurposePackage, "")
	require.Error(t, err)
	vs, err = Verifiers(nil, PurposePackage, "")
	require.NoError(t, err)
	_, err = pkgsig.Verify(pkgSig, stmt, vs)
	var e *pkgsig.Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, pkgsig.CodeUntrusted, e.Code())
}

// trustOracle compiles the trusted-keys schema with santhosh-tekuri/jsonschema/v6,
// the reference implementation pkg/schema must agree with.
func trustOracle() (*jsonschema.Schema, error) { return schematest.Oracle(SchemaName) }

func TestTrustSchemaAgreesWithV6(t *testing.T) {
	theirs, err := trustOracle()
	require.NoError(t, err, "v6 must compile %s", SchemaName)
	ours, err := trustSchema()
	require.NoError(t, err)
	docs := []string{trustedFile, `{"keys":[]}`}
	for _, r := range trustRefusals {
		docs = append(docs, r.doc)
	}
	for _, doc := range docs {
		v, err := jcs.Decode([]byte(doc))
		if err != nil {
			continue
		}
		verr := theirs.Validate(v)
		require.Equal(t, verr == nil, ours.Valid(v), "on %s: v6 says %v", doc, verr)
	}
}

// ParseKeySpec reads "[PURPOSE,...=]PUB" without misreading a key or a
// path that holds "=".
func TestParseKeySpec(t *testing.T) {
	for _, tc := range []struct {
		spec     string
		purposes []string
		pub, err string
	}{
		{"keys/ops.pub", nil, "keys/ops.pub", ""},
		{"ops+01234567+AbCd==", nil, "ops+01234567+AbCd==", ""},
		{"work_order=keys/a.pub", []string{"work_order"}, "keys/a.pub", ""},
		{"package,checkpoint=ops+01234567+AbCd==", []string{"package", "checkpoint"}, "ops+01234567+AbCd==", ""},
		{"./a=b.pub", nil, "./a=b.pub", ""},
		{"bogus=a.pub", nil, "", `unknown key purpose "bogus"`},
		{"package,package=a.pub", nil, "", "given twice"},
		{"package=", nil, "", "no key"},
	} {
		purposes, pub, err := ParseKeySpec(tc.spec)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.spec)
			continue
		}
		require.NoError(t, err, tc.spec)
		require.Equal(t, tc.purposes, purposes, tc.spec)
		require.Equal(t, tc.pub, pub, tc.spec)
	}
}
