package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// TestEdDSAMethod: jwt finds our EdDSA method, which accepts a good
// signature and refuses an altered one or another key type (the
// verification itself is keys.VerifyEd25519, held to crypto/ed25519 by
// pkg/keys's TestVerifyAgrees and FuzzVerifyAgrees).
func TestEdDSAMethod(t *testing.T) {
	m := jwt.GetSigningMethod("EdDSA")
	require.IsType(t, edDSA{}, m)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	sig, err := m.Sign("header.claims", priv)
	require.NoError(t, err)
	require.NoError(t, m.Verify("header.claims", sig, pub))
	require.ErrorIs(t, m.Verify("header.claimz", sig, pub), jwt.ErrEd25519Verification)
	bad := append([]byte{}, sig...)
	bad[40] ^= 1
	require.ErrorIs(t, m.Verify("header.claims", bad, pub), jwt.ErrEd25519Verification)
	require.ErrorIs(t, m.Verify("header.claims", sig, []byte(pub)), jwt.ErrInvalidKeyType)
}
