package pkgsig

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/control-plane/cp/pkg/ledger"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// Test keys, fixed so that fuzz corpora stay reproducible. opsOld has the
// same name as ops but is another key.
const (
	opsSigner      = "PRIVATE+KEY+ops+9a953d33+AYYjsCbWSfW1pbK9KpI5sPN8799B8CIyhC71mF7kFlPw"
	opsVerifier    = "ops+9a953d33+AWriOtxQGb8MVhODStJyZ27yQtVSIpdvDt4YlfEIBtyC"
	rogueSigner    = "PRIVATE+KEY+rogue+644e746b+AaqHS3CIYLapfx8k1GQgQp8yNsuypTB1fQL0BaphWGVY"
	rogueVerifier  = "rogue+644e746b+AX5iGkEGw6Xf/VIXtne6roKCHGHvKGfHTxhGrr6ZGkKE"
	opsOldSigner   = "PRIVATE+KEY+ops+d3bf3b98+ATisNtGz53/hGKHS/sC/83KVxPNoT1N9eblAZ+6Tt5TK"
	opsOldVerifier = "ops+d3bf3b98+AW6JkNVSefxMMEKfIoOHfhmc/jZqrY9mjbflcUFofX4D"
)

var (
	hashM = "sha256:" + strings.Repeat("1", 64)
	hashA = "sha256:" + strings.Repeat("a", 64)
	hashB = "sha256:" + strings.Repeat("b", 64)

	stmt = Statement{PackageID: "PKG-DEMO-001", Version: "1.2.0", ManifestHash: hashM, ArchiveHash: hashA}
)

func signer(t testing.TB, skey string) note.Signer {
	t.Helper()
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	return s
}

func verifier(t testing.TB, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	return v
}

func sign(t testing.TB, s Statement, skeys ...string) []byte {
	t.Helper()
	var signers []note.Signer
	for _, k := range skeys {
		signers = append(signers, signer(t, k))
	}
	msg, err := note.Sign(&note.Note{Text: s.Text()}, signers...)
	require.NoError(t, err)
	return msg
}

// signText signs an arbitrary note text with ops.
func signText(t testing.TB, text string) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, signer(t, opsSigner))
	require.NoError(t, err)
	return msg
}

func TestStatementText(t *testing.T) {
	require.Equal(t, "control-plane/package/v1\nPKG-DEMO-001\n1.2.0\n"+hashM+"\n"+hashA+"\n", stmt.Text())
}

func TestSign(t *testing.T) {
	sig, err := Sign(stmt, signer(t, opsSigner))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(sig, []byte(stmt.Text()+"\n— ops ")), "%s", sig)
	n, err := note.Open(sig, note.VerifierList(verifier(t, opsVerifier)))
	require.NoError(t, err)
	require.Equal(t, stmt.Text(), n.Text)

	_, err = Sign(stmt, nil)
	require.Error(t, err)
}

// malformed lists statements whose text would not parse back to them.
var malformed = map[string]func(s *Statement){
	"empty package":       func(s *Statement) { s.PackageID = "" },
	"package lower case":  func(s *Statement) { s.PackageID = "PKG-demo" },
	"package newline":     func(s *Statement) { s.PackageID = "PKG-A\nPKG-B" },
	"version v":           func(s *Statement) { s.Version = "v1.2.0" },
	"version build":       func(s *Statement) { s.Version = "1.2.0+b" },
	"version empty":       func(s *Statement) { s.Version = "" },
	"manifest hash bare":  func(s *Statement) { s.ManifestHash = strings.Repeat("1", 64) },
	"manifest hash upper": func(s *Statement) { s.ManifestHash = "sha256:" + strings.Repeat("A", 64) },
	"archive hash short":  func(s *Statement) { s.ArchiveHash = "sha256:" + strings.Repeat("a", 63) },
	"archive hash extra":  func(s *Statement) { s.ArchiveHash = hashA + "\nx" },
}

func TestSignRefusesMalformedStatement(t *testing.T) {
	for name, f := range malformed {
		t.Run(name, func(t *testing.T) {
			s := stmt
			f(&s)
			_, err := Sign(s, signer(t, opsSigner))
			require.Error(t, err)
			// A malformed expected statement is the caller's bug, not a
			// verdict on the signature.
			_, err = Verify(sign(t, stmt, opsSigner), s, nil)
			require.Error(t, err)
			var e *Error
			require.False(t, errors.As(err, &e), "got %v", err)
		})
	}
}

func with(f func(s *Statement)) Statement {
	s := stmt
	f(&s)
	return s
}

func checkpointNote(t testing.TB) []byte {
	t.Helper()
	c := ledger.Checkpoint{Origin: "control-plane/ledger/ho3", Size: 5}
	msg, err := c.Sign(signer(t, opsSigner))
	require.NoError(t, err)
	return msg
}

func TestVerify(t *testing.T) {
	trusted := note.VerifierList(verifier(t, opsVerifier))
	good := sign(t, stmt, opsSigner)
	tamperedSig := bytes.Clone(good)
	tamperedSig[len(tamperedSig)-5] ^= 1 // a base64 letter of the Ed25519 signature
	if bytes.Equal(tamperedSig, good) || tamperedSig[len(tamperedSig)-5] == '=' {
		t.Fatal("bad tamper")
	}
	tamperedText := bytes.Replace(good, []byte(hashA), []byte(hashB), 1)

	tests := []struct {
		name      string
		sig       []byte
		want      Statement
		verifiers note.Verifiers
		code      string // "" for success
		reason    string
		keyName   string
	}{
		{name: "valid trusted", sig: good, code: "", keyName: "ops"},
		{name: "trusted and untrusted signers", sig: sign(t, stmt, rogueSigner, opsSigner), keyName: "ops"},
		{name: "duplicated signature line", sig: append(bytes.Clone(good), good[len(stmt.Text())+1:]...), keyName: "ops"},
		{name: "absent", sig: nil, code: CodeMissing, reason: "PKG-DEMO-001 1.2.0 is not signed"},
		{name: "empty file", sig: []byte{}, code: CodeInvalid, reason: "signature file of PKG-DEMO-001 1.2.0 is empty"},
		{name: "garbage", sig: []byte("hello\n"), code: CodeInvalid, reason: "not a signed note"},
		{name: "binary", sig: []byte{0x1f, 0x8b, 0, 0}, code: CodeInvalid, reason: "not a signed note"},
		{name: "text only", sig: []byte(stmt.Text()), code: CodeInvalid, reason: "not a signed note"},
		{name: "no signature lines", sig: []byte(stmt.Text() + "\n"), code: CodeInvalid, reason: "not a signed note"},
		{name: "truncated", sig: good[:len(good)-10], code: CodeInvalid, reason: "not a signed note"},
		{name: "no final newline", sig: good[:len(good)-1], code: CodeInvalid, reason: "not a signed note"},
		{name: "CRLF", sig: bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")), code: CodeInvalid, reason: "not a signed note"},
		{name: "checkpoint by a package key", sig: checkpointNote(t), code: CodeInvalid,
			reason: `not a package signature: its first line is "control-plane/ledger/ho3"`},
		{name: "checkpoint by a checkpoint-only key", sig: checkpointNote(t), verifiers: note.VerifierList(), code: CodeInvalid,
			reason: "not a package signature"},
		{name: "other purpose version", sig: signText(t, strings.Replace(stmt.Text(), "/v1", "/v2", 1)), code: CodeInvalid,
			reason: `first line is "control-plane/package/v2"`},
		{name: "extra line", sig: signText(t, stmt.Text()+"extra\n"), code: CodeInvalid, reason: "has 6 lines, want 5"},
		{name: "missing line", sig: signText(t, Purpose+"\nPKG-DEMO-001\n1.2.0\n"+hashM+"\n"), code: CodeInvalid, reason: "has 4 lines"},
		{name: "blank line inside", sig: signText(t, Purpose+"\nPKG-DEMO-001\n\n1.2.0\n"+hashM+"\n"+hashA+"\n"), code: CodeInvalid, reason: "has 6 lines"},
		{name: "other package", sig: good, want: with(func(s *Statement) { s.PackageID = "PKG-OTHER" }), code: CodeInvalid,
			reason: `signed for package "PKG-DEMO-001", want PKG-OTHER`},
		{name: "other version", sig: good, want: with(func(s *Statement) { s.Version = "1.2.1" }), code: CodeInvalid,
			reason: `signed for version "1.2.0", want 1.2.1`},
		{name: "pre-release of the version", sig: good, want: with(func(s *Statement) { s.Version = "1.2.0-rc.1" }), code: CodeInvalid,
			reason: "signed for version"},
		{name: "other manifest hash", sig: good, want: with(func(s *Statement) { s.ManifestHash = hashB }), code: CodeInvalid,
			reason: "signed for manifest hash"},
		{name: "other archive hash", sig: good, want: with(func(s *Statement) { s.ArchiveHash = hashB }), code: CodeInvalid,
			reason: `signed for archive hash "` + hashA + `", want ` + hashB},
		{name: "other archive by untrusted key", sig: sign(t, stmt, rogueSigner), want: with(func(s *Statement) { s.ArchiveHash = hashB }),
			code: CodeInvalid, reason: "signed for archive hash"},
		{name: "tampered signature", sig: tamperedSig, code: CodeInvalid, reason: "signature by ops+9a953d33 does not verify", keyName: "ops"},
		{name: "tampered text", sig: tamperedText, want: with(func(s *Statement) { s.ArchiveHash = hashB }), code: CodeInvalid,
			reason: "does not verify", keyName: "ops"},
		{name: "untrusted key", sig: sign(t, stmt, rogueSigner), code: CodeUntrusted,
			reason: "signed only by rogue+644e746b, not trusted for packages", keyName: "rogue"},
		{name: "untrusted key with a trusted name", sig: sign(t, stmt, opsOldSigner), code: CodeUntrusted,
			reason: "signed only by ops+d3bf3b98", keyName: "ops"},
		{name: "two untrusted keys", sig: sign(t, stmt, rogueSigner, opsOldSigner), code: CodeUntrusted,
			reason: "signed only by rogue+644e746b, ops+d3bf3b98", keyName: "rogue"},
		{name: "no verifiers", sig: good, verifiers: note.VerifierList(), code: CodeUntrusted, keyName: "ops"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == (Statement{}) {
				want = stmt
			}
			v := tt.verifiers
			if v == nil {
				v = trusted
			}
			name, err := Verify(tt.sig, want, v)
			if tt.code == "" {
				require.NoError(t, err)
				require.Equal(t, tt.keyName, name)
				return
			}
			require.Error(t, err)
			require.Empty(t, name)
			var e *Error
			require.True(t, errors.As(err, &e), "error %T %v", err, err)
			require.Equal(t, tt.code, e.Code(), "%v", err)
			require.Contains(t, e.Reason, tt.reason)
			require.Equal(t, tt.keyName, e.KeyName)
		})
	}
}

// Every proper prefix of a signature file is refused as invalid (or
// missing, when empty), never accepted or called untrusted.
func TestVerifyEveryTruncation(t *testing.T) {
	trusted := note.VerifierList(verifier(t, opsVerifier))
	good := sign(t, stmt, opsSigner)
	for n := range len(good) {
		_, err := Verify(good[:n], stmt, trusted)
		var e *Error
		require.True(t, errors.As(err, &e), "prefix %d: %v", n, err)
		require.Equal(t, CodeInvalid, e.Code(), "prefix %d: %v", n, err) // an empty file is present, not missing
	}
}

func TestNilVerifiers(t *testing.T) {
	_, err := Verify(sign(t, stmt, opsSigner), stmt, nil)
	var e *Error
	require.True(t, errors.As(err, &e))
	require.Equal(t, CodeUntrusted, e.Code())
}

func TestCheck(t *testing.T) {
	trusted := note.VerifierList(verifier(t, opsVerifier))
	good := sign(t, stmt, opsSigner)
	for _, allow := range []bool{false, true} {
		r, err := Check(good, stmt, trusted, allow)
		require.NoError(t, err)
		require.Equal(t, Result{Signed: true, KeyName: "ops"}, r)
	}

	r, err := Check(nil, stmt, trusted, true)
	require.NoError(t, err)
	require.True(t, r.Waived)
	require.False(t, r.Signed)
	require.Empty(t, r.KeyName)
	require.Contains(t, r.Waiver.Reason, "PKG-DEMO-001 1.2.0 is unsigned")
	require.Contains(t, r.Waiver.Reason, "CONTROL_PLANE_ALLOW_UNSIGNED=1")

	// Not waived: missing without the flag; anything present but bad,
	// with or without it.
	refused := []struct {
		name  string
		sig   []byte
		want  Statement
		allow bool
		code  string
	}{
		{"missing, not allowed", nil, stmt, false, CodeMissing},
		{"empty, not allowed", []byte{}, stmt, false, CodeInvalid},
		{"empty, allowed: not waived", []byte{}, stmt, true, CodeInvalid},
		{"garbage", []byte("x"), stmt, true, CodeInvalid},
		{"whitespace only", []byte("\n"), stmt, true, CodeInvalid},
		{"checkpoint", checkpointNote(t), stmt, true, CodeInvalid},
		{"other archive", good, with(func(s *Statement) { s.ArchiveHash = hashB }), true, CodeInvalid},
		{"untrusted", sign(t, stmt, rogueSigner), stmt, true, CodeUntrusted},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Check(tt.sig, tt.want, trusted, tt.allow)
			require.Equal(t, Result{}, r)
			var e *Error
			require.True(t, errors.As(err, &e), "%v", err)
			require.Equal(t, tt.code, e.Code())
		})
	}
}
