package keys

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

// TestPairSignerMatchesNote: PairSigner's notes are byte for byte those of
// note.NewSigner, for many keys and messages, and verify.
func TestPairSignerMatchesNote(t *testing.T) {
	for i := range 50 {
		skey, vkey, err := note.GenerateKey(rand.Reader, fmt.Sprintf("k%d", i))
		require.NoError(t, err)
		want, err := note.NewSigner(skey)
		require.NoError(t, err)
		got, err := PairSigner(skey, vkey)
		require.NoError(t, err)
		require.Equal(t, want.Name(), got.Name())
		require.Equal(t, want.KeyHash(), got.KeyHash())
		n := &note.Note{Text: fmt.Sprintf("origin/%d\n%d\nroot\n", i, i*i)}
		a, err := note.Sign(n, want)
		require.NoError(t, err)
		b, err := note.Sign(n, got)
		require.NoError(t, err)
		require.Equal(t, string(a), string(b))
		v, err := note.NewVerifier(vkey)
		require.NoError(t, err)
		_, err = note.Open(b, note.VerifierList(v))
		require.NoError(t, err)
	}
}

func TestPairSignerRefusesMismatch(t *testing.T) {
	s1, v1, err := note.GenerateKey(rand.Reader, "a")
	require.NoError(t, err)
	_, v2, err := note.GenerateKey(rand.Reader, "a")
	require.NoError(t, err)
	_, v3, err := note.GenerateKey(rand.Reader, "b")
	require.NoError(t, err)
	for _, bad := range [][2]string{{s1, v2}, {s1, v3}, {v1, v1}, {s1, "junk"}, {"PRIVATE+KEY+a+0000+x", v1}} {
		_, err := PairSigner(bad[0], bad[1])
		require.Error(t, err, "%q", bad)
	}
}

// TestSelfVerifier: Self accepts this signer's notes and refuses others',
// tampered ones and a signature made with another nonce.
func TestSelfVerifier(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "self")
	require.NoError(t, err)
	s, err := PairSigner(skey, vkey)
	require.NoError(t, err)
	self := s.(interface{ Self() note.Verifier }).Self()
	msg, err := note.Sign(&note.Note{Text: "origin\n5\nroot\n"}, s)
	require.NoError(t, err)
	_, err = note.Open(msg, note.VerifierList(self))
	require.NoError(t, err)

	tampered := []byte(strings.Replace(string(msg), "5", "6", 1))
	_, err = note.Open(tampered, note.VerifierList(self))
	require.Error(t, err)

	// Another key under the same name and hash is not ours.
	other, _, err := note.GenerateKey(rand.Reader, "self")
	require.NoError(t, err)
	os, err := note.NewSigner(other)
	require.NoError(t, err)
	forged, err := note.Sign(&note.Note{Text: "origin\n5\nroot\n"}, os)
	require.NoError(t, err)
	_, err = note.Open(forged, note.VerifierList(self))
	require.Error(t, err)

	// A changed R: S no longer matches.
	sig := msg[strings.LastIndex(string(msg), " ")+1 : len(msg)-1]
	raw, err := base64.StdEncoding.DecodeString(string(sig))
	require.NoError(t, err)
	raw[4] ^= 1 // R changed: S no longer matches
	bad := append([]byte(string(msg[:strings.LastIndex(string(msg), " ")+1])), []byte(base64.StdEncoding.EncodeToString(raw)+"\n")...)
	_, err = note.Open(bad, note.VerifierList(self))
	require.Error(t, err)
}
