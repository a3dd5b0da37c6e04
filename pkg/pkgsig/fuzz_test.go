package pkgsig

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// fuzzStatements are the statements FuzzVerify checks signatures against;
// ops signed only the first two.
var fuzzStatements = []Statement{
	stmt,
	with(func(s *Statement) { s.Version = "1.3.0-rc.1" }),
	with(func(s *Statement) { s.ArchiveHash = hashB }),
	with(func(s *Statement) { s.PackageID = "PKG-DEMO-002" }),
	with(func(s *Statement) { s.Version = "1.2.1" }),
	with(func(s *Statement) { s.ManifestHash = hashB }),
}

// FuzzVerify checks that Verify never panics, refuses only with *Error
// (SIGNATURE_MISSING exactly for empty input), and never accepts a
// statement the trusted key did not sign: Ed25519 cannot be forged by
// mutation, so an acceptance of anything but the first two statements, or
// of a note whose text is not the statement, is a verification bug.
func FuzzVerify(f *testing.F) {
	trusted := note.VerifierList(verifier(f, opsVerifier))
	for _, s := range fuzzStatements[:2] {
		f.Add(sign(f, s, opsSigner), uint8(0))
		f.Add(sign(f, s, opsSigner), uint8(2))
		f.Add(sign(f, s, rogueSigner, opsSigner), uint8(1))
	}
	for i, s := range fuzzStatements[2:] {
		f.Add(sign(f, s, rogueSigner), uint8(i+2))
		f.Add(sign(f, s, opsOldSigner), uint8(i))
	}
	f.Add(checkpointNote(f), uint8(0))
	f.Add(signText(f, stmt.Text()+"extra\n"), uint8(0))
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("garbage\n\n— ops AAAA\n"), uint8(0))
	f.Fuzz(func(t *testing.T, sig []byte, which uint8) {
		want := fuzzStatements[int(which)%len(fuzzStatements)]
		name, err := Verify(sig, want, trusted)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e), "error %T: %v", err, err)
			require.Equal(t, sig == nil, e.Code() == CodeMissing, "code %s for %d bytes", e.Code(), len(sig))
			r, cerr := Check(sig, want, trusted, true)
			require.Equal(t, e.Code() == CodeMissing, cerr == nil && r.Waived, "waiver for %s", e.Code())
			return
		}
		require.Equal(t, "ops", name)
		require.True(t, want == fuzzStatements[0] || want == fuzzStatements[1], "accepted a statement ops never signed: %+v", want)
		n, err := note.Open(sig, trusted)
		require.NoError(t, err)
		require.Equal(t, want.Text(), n.Text)
		r, err := Check(sig, want, trusted, false)
		require.NoError(t, err)
		require.Equal(t, Result{Signed: true, KeyName: "ops"}, r)
	})
}
