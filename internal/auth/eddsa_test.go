package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// TestEd25519Agrees: verifyEd25519 accepts good signatures and refuses
// every altered one, as crypto/ed25519 does; and jwt uses it for EdDSA.
func TestEd25519Agrees(t *testing.T) {
	require.IsType(t, edDSA{}, jwt.GetSigningMethod("EdDSA"))
	for i := 0; i < 50; i++ {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		msg := make([]byte, i*7)
		rand.Read(msg)
		sig := ed25519.Sign(priv, msg)
		require.True(t, verifyEd25519(pub, msg, sig))
		for _, bit := range []int{0, 7, 100, 255, 256, 300, 511} {
			bad := append([]byte{}, sig...)
			bad[bit/8] ^= 1 << (bit % 8)
			require.Equal(t, ed25519.Verify(pub, msg, bad), verifyEd25519(pub, msg, bad), "bit %d", bit)
		}
		badPub := append(ed25519.PublicKey{}, pub...)
		badPub[3] ^= 0x10
		require.Equal(t, ed25519.Verify(badPub, msg, sig), verifyEd25519(badPub, msg, sig))
		if len(msg) > 0 {
			require.False(t, verifyEd25519(pub, msg[1:], sig))
		}
	}
	// S not reduced (S + L): crypto/ed25519 refuses this malleated form.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig := ed25519.Sign(priv, []byte("m"))
	l := []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	mal := append([]byte{}, sig...)
	carry := 0
	for i := 0; i < 32; i++ {
		s := int(mal[32+i]) + int(l[i]) + carry
		mal[32+i], carry = byte(s), s>>8
	}
	require.False(t, ed25519.Verify(pub, []byte("m"), mal))
	require.False(t, verifyEd25519(pub, []byte("m"), mal))
}

func FuzzEd25519Agrees(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.Add([]byte(pub), []byte("msg"), ed25519.Sign(priv, []byte("msg")))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			return
		}
		if got, want := verifyEd25519(pub, msg, sig), ed25519.Verify(pub, msg, sig); got != want {
			t.Fatalf("verifyEd25519 %v, crypto/ed25519 %v: pub %x msg %x sig %x", got, want, pub, msg, sig)
		}
	})
}
