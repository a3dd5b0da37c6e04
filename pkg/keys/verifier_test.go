package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// TestVerifyAgrees holds VerifyEd25519 to crypto/ed25519.Verify: valid
// signatures, every kind of flipped bit, another key, another message,
// and the malleated S + L that crypto/ed25519 refuses.
func TestVerifyAgrees(t *testing.T) {
	for i := range 50 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		msg := make([]byte, i*7)
		rand.Read(msg)
		sig := ed25519.Sign(priv, msg)
		require.True(t, VerifyEd25519(pub, msg, sig))
		for _, bit := range []int{0, 7, 100, 255, 256, 300, 511} {
			bad := append([]byte{}, sig...)
			bad[bit/8] ^= 1 << (bit % 8)
			require.Equal(t, ed25519.Verify(pub, msg, bad), VerifyEd25519(pub, msg, bad), "bit %d", bit)
		}
		badPub := append(ed25519.PublicKey{}, pub...)
		badPub[3] ^= 0x10
		require.Equal(t, ed25519.Verify(badPub, msg, sig), VerifyEd25519(badPub, msg, sig))
		if len(msg) > 0 {
			require.False(t, VerifyEd25519(pub, msg[1:], sig))
		}
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig := ed25519.Sign(priv, []byte("m"))
	l := []byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	mal := append([]byte{}, sig...)
	carry := 0
	for i := range 32 {
		s := int(mal[32+i]) + int(l[i]) + carry
		mal[32+i], carry = byte(s), s>>8
	}
	require.False(t, ed25519.Verify(pub, []byte("m"), mal))
	require.False(t, VerifyEd25519(pub, []byte("m"), mal))
	require.False(t, VerifyEd25519(pub[:31], []byte("m"), sig))
	require.False(t, VerifyEd25519(pub, []byte("m"), sig[:63]))
}

func FuzzVerifyAgrees(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	f.Add([]byte(pub), []byte("msg"), ed25519.Sign(priv, []byte("msg")))
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			return
		}
		if got, want := VerifyEd25519(pub, msg, sig), ed25519.Verify(pub, msg, sig); got != want {
			t.Fatalf("VerifyEd25519 %v, crypto/ed25519 %v: pub %x msg %x sig %x", got, want, pub, msg, sig)
		}
	})
}

// TestNewVerifierAgrees: a note opens under NewVerifier exactly when it
// opens under note.NewVerifier, with the same name and key hash.
func TestNewVerifierAgrees(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "appr")
	require.NoError(t, err)
	_, other, err := note.GenerateKey(rand.Reader, "appr")
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	msg, err := note.Sign(&note.Note{Text: "control-plane/work-order/v1\nWO-20261206-001\n"}, s)
	require.NoError(t, err)
	tampered := append([]byte{}, msg...)
	tampered[len("control-plane/work-order/v1\nWO-2026")] = '9'
	for _, vk := range []string{vkey, other} {
		want, err := note.NewVerifier(vk)
		require.NoError(t, err)
		got, err := NewVerifier(vk)
		require.NoError(t, err)
		require.Equal(t, want.Name(), got.Name())
		require.Equal(t, want.KeyHash(), got.KeyHash())
		for _, m := range [][]byte{msg, tampered} {
			_, werr := note.Open(m, note.VerifierList(want))
			_, gerr := note.Open(m, note.VerifierList(got))
			require.Equal(t, werr == nil, gerr == nil, "key %s, note %q: note.NewVerifier %v, NewVerifier %v", vk, m, werr, gerr)
		}
	}
	n, err := note.Open(msg, note.VerifierList(must(NewVerifier(vkey))))
	require.NoError(t, err)
	require.Equal(t, "control-plane/work-order/v1\nWO-20261206-001\n", n.Text)
}

func must(v note.Verifier, err error) note.Verifier {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzNewVerifier: NewVerifier accepts exactly the key texts
// note.NewVerifier accepts, naming the same key.
func FuzzNewVerifier(f *testing.F) {
	_, vkey, _ := note.GenerateKey(rand.Reader, "appr")
	f.Add(vkey)
	f.Add("appr+00000000+AQ==")
	f.Add("a+b+c")
	f.Fuzz(func(t *testing.T, vk string) {
		want, werr := note.NewVerifier(vk)
		got, gerr := NewVerifier(vk)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: note.NewVerifier %v, NewVerifier %v", vk, werr, gerr)
		}
		if werr == nil && (want.Name() != got.Name() || want.KeyHash() != got.KeyHash()) {
			t.Fatalf("%q: %s+%08x vs %s+%08x", vk, want.Name(), want.KeyHash(), got.Name(), got.KeyHash())
		}
	})
}
