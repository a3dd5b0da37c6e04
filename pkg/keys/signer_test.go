package keys

import (
	"crypto/rand"
	"fmt"
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
