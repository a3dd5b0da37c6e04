package pkgsig

import (
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func BenchmarkVerify(b *testing.B) {
	trusted := note.VerifierList(verifier(b, opsVerifier))
	sig := sign(b, stmt, opsSigner)
	for b.Loop() {
		if _, err := Verify(sig, stmt, trusted); err != nil {
			b.Fatal(err)
		}
	}
}
