package auth

import (
	"crypto"
	"crypto/ed25519"

	"github.com/golang-jwt/jwt/v5"

	"github.com/control-plane/cp/pkg/keys"
)

// edDSA is jwt's EdDSA signing method with a verification that costs a
// one-shot process less. crypto/ed25519.Verify computes [S]B−[k]A with a
// precomputed base-point table built on first use (~0.3 ms here, more than
// the whole token check may cost a one-entry append); this computes the
// same point with one variable-time multi-scalar multiplication of
// filippo.io/edwards25519 (the library crypto/ed25519's own arithmetic
// comes from), whose lookup tables are built per call from the two
// points: no global table, about a third of the cold cost. Variable time
// is safe here: a verification handles only public values. It accepts
// exactly what crypto/ed25519.Verify accepts (RFC 8032 as Go implements
// it: canonical S, the same point decoding), which TestEd25519Agrees and
// FuzzEd25519Agrees hold it to. Signing is jwt's (crypto/ed25519): only
// cp-auth signs, once.
type edDSA struct{}

func (edDSA) Alg() string { return "EdDSA" }

func (edDSA) Sign(signingString string, key any) ([]byte, error) {
	return jwt.SigningMethodEdDSA.Sign(signingString, key)
}

func (edDSA) Verify(signingString string, sig []byte, key any) error {
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		if k, isKey := key.(crypto.PublicKey); isKey {
			pub, ok = k.(ed25519.PublicKey)
		}
	}
	if !ok || len(pub) != ed25519.PublicKeySize {
		return jwt.ErrInvalidKeyType
	}
	// crypto/ed25519.Verify's check without its precomputed base-point
	// table (keys.VerifyEd25519, which note signatures are verified with
	// too).
	if !keys.VerifyEd25519(pub, []byte(signingString), sig) {
		return jwt.ErrEd25519Verification
	}
	return nil
}

// The parser finds a method by the token's alg; ours replaces jwt's EdDSA
// in this process (the only alg Verify allows: WithValidMethods).
func init() {
	jwt.RegisterSigningMethod("EdDSA", func() jwt.SigningMethod { return edDSA{} })
}
