package ledger

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/control-plane/cp/pkg/keys"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// planeKey returns a checkpoint key and the verifiers that trust it.
func planeKey(t *testing.T) (*CheckpointKey, note.Verifiers) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "plane-test-checkpoint")
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	vs := note.VerifierList(v)
	return &CheckpointKey{Origin: "plane-test/ho3/governance", Signer: s,
		Trusted: func() (note.Verifiers, error) { return vs, nil }}, vs
}

func appendN(t *testing.T, l *Ledger, n int) error {
	t.Helper()
	var drafts []Draft
	for i := range n {
		drafts = append(drafts, Draft{EventType: "EV", SubmissionID: fmt.Sprint(i)})
	}
	_, err := l.Append(ctx, drafts)
	return err
}

func code(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Code()
	}
	return fmt.Sprint(err)
}

func TestFrontierRootIsTreeHash(t *testing.T) {
	var f [64]tlog.Hash
	var stored memHashes
	for n := int64(0); n < 70; n++ {
		got := frontierRoot(&f, n)
		want, err := tlog.TreeHash(n, stored)
		require.NoError(t, err)
		require.Equal(t, want, got, "size %d", n)
		leaf := tlog.RecordHash([]byte(fmt.Sprint(n)))
		var b []byte
		b = appendStoredHashes(b, &f, n, leaf)
		for i := 0; i < len(b); i += tlog.HashSize {
			stored = append(stored, tlog.Hash(b[i:i+tlog.HashSize]))
		}
	}
}

// TestAppendLeavesSignedCheckpoint: every append (GENESIS, a batch, one
// entry) leaves X.checkpoint signed by the key, covering every entry, and
// verify with Expect accepts it.
func TestAppendLeavesSignedCheckpoint(t *testing.T) {
	k, vs := planeKey(t)
	path := filepath.Join(t.TempDir(), "governance.jsonl")
	l, err := OpenWriter(path, Options{Checkpoint: k})
	require.NoError(t, err)
	defer l.Close()
	_, err = Genesis(ctx, l, Draft{})
	require.NoError(t, err)
	for _, n := range []int{1, 5, 1, 100} {
		require.NoError(t, appendN(t, l, n))
		st, err := l.State(ctx)
		require.NoError(t, err)
		b, err := l.ReadCheckpoint()
		require.NoError(t, err)
		c, signed, err := OpenCheckpoint(b, vs)
		require.NoError(t, err)
		require.True(t, signed)
		require.Equal(t, st.Size, c.Size)
		require.Equal(t, st.Root, c.Root)
		require.Equal(t, k.Origin, c.Origin)
	}
	rep := verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	_, cp, _ := SidePaths(path)
	_, err = os.Stat(cp + ".tmp")
	require.ErrorIs(t, err, fs.ErrNotExist, "the temporary file was renamed into place")
}

// TestCheckpointCatchesTailCut: cutting the tail (and X.tlog to match)
// fails verify, and the next append refuses to sign over the cut.
func TestCheckpointCatchesTailCut(t *testing.T) {
	k, vs := planeKey(t)
	path := filepath.Join(t.TempDir(), "governance.jsonl")
	l, err := OpenWriter(path, Options{Checkpoint: k})
	require.NoError(t, err)
	_, err = Genesis(ctx, l, Draft{})
	require.NoError(t, err)
	require.NoError(t, appendN(t, l, 6))
	l.Close()

	lines := readLines(t, path)
	writeLines(t, path, lines[:5]) // 7 entries → 5 (the last element is "")
	tl, _, _ := SidePaths(path)
	require.NoError(t, os.Truncate(tl, tlog.StoredHashCount(5)*tlog.HashSize))
	rep := verify(t, path, VerifyOptions{})
	require.Equal(t, CheckpointInconsistent, rep.Issues[0].Code, "%+v", rep.Issues)

	l, err = OpenWriter(path, Options{Checkpoint: k})
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, CheckpointInconsistent, code(appendN(t, l, 1)))
	require.Len(t, readLines(t, path), 6, "nothing appended")

	// Deleting the checkpoint as well: verify and append both refuse.
	_, cp, _ := SidePaths(path)
	require.NoError(t, os.Remove(cp))
	rep = verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.Equal(t, CheckpointMissing, rep.Issues[0].Code)
	require.Equal(t, CheckpointMissing, code(appendN(t, l, 1)))

	// An unsigned checkpoint that matches the cut: refused too.
	c, _, err := l.Checkpoint(ctx, k.Origin) // re-anchors: signed by the key
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cp, []byte(c.Text()), 0o644))
	rep = verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.Equal(t, CheckpointInvalid, rep.Issues[0].Code)
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, CheckpointInvalid, code(appendN(t, l, 1)))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, before, after, "the refused append's entry was removed")
	rep = verify(t, path, VerifyOptions{})
	require.Equal(t, int64(5), rep.Entries)
	require.Empty(t, rep.Issues, "lines and stored hashes in step after the refusal")

	// Signed by a key nobody trusts: refused.
	other, _ := planeKey(t)
	b, err := c.Sign(other.Signer)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cp, b, 0o644))
	rep = verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.Equal(t, CheckpointInvalid, rep.Issues[0].Code)
	require.Equal(t, CheckpointInvalid, code(appendN(t, l, 1)))

	// Cosigned by a trusted key and another: accepted.
	b, err = c.Sign(k.Signer, other.Signer)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cp, b, 0o644))
	require.NoError(t, appendN(t, l, 1))
	rep = verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.True(t, rep.Valid, "%+v", rep.Issues)
}

// TestCheckpointNeverAheadOfLedger: a failed append (a draft that cannot
// be encoded first) writes no checkpoint, and a stale temporary file from
// a crash is never taken for the checkpoint.
func TestCheckpointNeverAheadOfLedger(t *testing.T) {
	k, vs := planeKey(t)
	path := filepath.Join(t.TempDir(), "governance.jsonl")
	l, err := OpenWriter(path, Options{Checkpoint: k})
	require.NoError(t, err)
	defer l.Close()
	_, err = Genesis(ctx, l, Draft{})
	require.NoError(t, err)
	_, cp, _ := SidePaths(path)
	require.NoError(t, os.WriteFile(cp+".tmp", []byte("junk"), 0o644))
	_, err = l.Append(ctx, []Draft{{EventType: "EV", Metadata: map[string]any{"bad": make(chan int)}}})
	require.Error(t, err)
	rep := verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.Equal(t, int64(1), rep.Checkpoint.TreeSize)
	require.NoError(t, appendN(t, l, 2))
	rep = verify(t, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.True(t, rep.Valid, "%+v", rep.Issues)
	require.Equal(t, int64(3), rep.Checkpoint.TreeSize)
}

// TestCheckpointSymlinkRefused: a planted X.checkpoint symlink is neither
// read nor written through.
func TestCheckpointSymlinkRefused(t *testing.T) {
	k, _ := planeKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "governance.jsonl")
	l, err := OpenWriter(path, Options{Checkpoint: k})
	require.NoError(t, err)
	defer l.Close()
	_, err = Genesis(ctx, l, Draft{})
	require.NoError(t, err)
	_, cp, _ := SidePaths(path)
	target := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(target, []byte("keep"), 0o600))
	require.NoError(t, os.Symlink(target, cp+".tmp"))
	require.NoError(t, appendN(t, l, 1)) // the link is replaced, not followed
	b, _ := os.ReadFile(target)
	require.Equal(t, "keep", string(b))
	require.NoError(t, os.Remove(cp))
	require.NoError(t, os.Symlink(target, cp))
	require.Error(t, appendN(t, l, 1))
}

// TestCheckpointHardLinkNotWrittenThrough: a hard link planted as the
// stored checkpoint (its target the same length, so the next checkpoint
// would be written over it in place) is replaced by a fresh file, and the
// file behind it keeps its bytes.
func TestCheckpointHardLinkNotWrittenThrough(t *testing.T) {
	k, vs := planeKey(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "governance.jsonl")
	l, err := OpenWriter(path, Options{Checkpoint: k})
	require.NoError(t, err)
	defer l.Close()
	_, err = Genesis(ctx, l, Draft{})
	require.NoError(t, err)
	require.NoError(t, appendN(t, l, 1))
	_, cp, _ := SidePaths(path)
	old, err := os.ReadFile(cp)
	require.NoError(t, err)
	victim := filepath.Join(dir, "victim")
	require.NoError(t, os.WriteFile(victim, old, 0o600))
	require.NoError(t, os.Remove(cp))
	require.NoError(t, os.Link(victim, cp))
	require.NoError(t, appendN(t, l, 1))
	b, err := os.ReadFile(victim)
	require.NoError(t, err)
	require.Equal(t, string(old), string(b), "the checkpoint was written through a hard link")
	rep, err := verifyPath(ctx, path, VerifyOptions{Verifiers: vs, Expect: true})
	require.NoError(t, err)
	require.True(t, rep.Valid, "%v", rep.Issues)
	require.Equal(t, int64(3), rep.Checkpoint.TreeSize)
}

// TestCheckSignedSelf: with the plane's own signer (keys.PairSigner), a
// stored checkpoint is checked by its Self verifier, without a signature:
// it accepts exactly what signing the text again accepts (ours), a
// cosigned note, and a note a trusted key signed; it refuses an unsigned
// note, another key's, our signature over other text, and a forged S or R.
func TestCheckSignedSelf(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "plane-test-checkpoint")
	require.NoError(t, err)
	ours, err := keys.PairSigner(skey, vkey)
	require.NoError(t, err)
	oskey, ovkey, err := note.GenerateKey(rand.Reader, "plane-other-checkpoint")
	require.NoError(t, err)
	other, err := note.NewSigner(oskey)
	require.NoError(t, err)
	otherV, err := note.NewVerifier(ovkey)
	require.NoError(t, err)
	trusted := note.VerifierList()
	k := &CheckpointKey{Origin: "plane-test/ho3/governance", Signer: ours,
		Trusted: func() (note.Verifiers, error) { return trusted, nil }}
	c := Checkpoint{Origin: k.Origin, Size: 7, Root: tlog.Hash{1, 2, 3}}
	signed, err := c.Sign(ours)
	require.NoError(t, err)
	cosigned, err := c.Sign(ours, other)
	require.NoError(t, err)
	byOther, err := c.Sign(other)
	require.NoError(t, err)
	elsewhere, err := Checkpoint{Origin: k.Origin, Size: 8, Root: tlog.Hash{1, 2, 3}}.Sign(ours)
	require.NoError(t, err)
	tamper := func(b []byte, back int) []byte {
		// flip a bit of the signature's decoded bytes: back bytes from the end
		text, sig, _ := bytes.Cut(b, []byte("\n\n"))
		line := strings.TrimSuffix(string(sig), "\n")
		i := strings.LastIndex(line, " ")
		raw, err := base64.StdEncoding.DecodeString(line[i+1:])
		require.NoError(t, err)
		raw[len(raw)-back] ^= 1
		return []byte(string(text) + "\n\n" + line[:i+1] + base64.StdEncoding.EncodeToString(raw) + "\n")
	}
	check := func(b []byte) error {
		c, err := parseBody(b)
		require.NoError(t, err)
		return k.checkSigned(b, c)
	}
	require.NoError(t, check(signed), "ours")
	require.NoError(t, check(cosigned), "cosigned")
	require.Error(t, check([]byte(c.Text())), "unsigned")
	require.Error(t, check(byOther), "another key's, not trusted")
	require.Error(t, check(tamper(signed, 1)), "S forged")
	require.Error(t, check(tamper(signed, 40)), "R forged")
	// our signature moved onto other text
	_, sigOf8, _ := bytes.Cut(elsewhere, []byte("\n\n"))
	require.Error(t, check([]byte(c.Text()+"\n"+string(sigOf8))), "our signature of other text")
	trusted = note.VerifierList(otherV)
	require.NoError(t, check(byOther), "another key's, trusted")
}

// TestCheckSignedBodyIsSignedText: the body a stored checkpoint is read as
// (parseBody: up to the first blank line) must be the text the signature
// covers (note.Open: up to the last). A note whose signed text holds a
// blank line carries a second "body" after it, and Self accepted the
// signature over the whole text while the checkpoint checked against the
// ledger was only its first lines: a text the key signed for anything
// else, whose first lines look like a checkpoint, passed as one. Signing
// again refused it (other bytes), and so does every public reader
// (OpenCheckpoint parses the signed text: an empty line is no
// checkpoint). Also refused: a signature line that names our key and key
// hash over another key's signature.
func TestCheckSignedBodyIsSignedText(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "plane-test-checkpoint")
	require.NoError(t, err)
	ours, err := keys.PairSigner(skey, vkey)
	require.NoError(t, err)
	plain, err := note.NewSigner(skey)
	require.NoError(t, err)
	ourV, err := keys.NewVerifier(vkey)
	require.NoError(t, err)
	oskey, _, err := note.GenerateKey(rand.Reader, "plane-test-checkpoint")
	require.NoError(t, err)
	other, err := note.NewSigner(oskey)
	require.NoError(t, err)
	c := Checkpoint{Origin: "plane-test/ho3/governance", Size: 7, Root: tlog.Hash{1, 2, 3}}
	smuggled, err := note.Sign(&note.Note{Text: c.Text() + "\nanything the key signed\n"}, ours)
	require.NoError(t, err)
	body, err := parseBody(smuggled)
	require.NoError(t, err)
	require.Equal(t, c, body, "the first lines read as the checkpoint")

	// our key name and hash, another key's signature
	byOther, err := c.Sign(other)
	require.NoError(t, err)
	text, sig, _ := bytes.Cut(byOther, []byte("\n\n"))
	line := strings.TrimSuffix(string(sig), "\n")
	raw, err := base64.StdEncoding.DecodeString(line[strings.LastIndex(line, " ")+1:])
	require.NoError(t, err)
	binary.BigEndian.PutUint32(raw, ours.KeyHash())
	collide := []byte(string(text) + "\n\n— " + ours.Name() + " " + base64.StdEncoding.EncodeToString(raw) + "\n")

	for _, signer := range []note.Signer{ours, plain} {
		for _, trusted := range []note.Verifiers{nil, note.VerifierList(ourV)} {
			k := &CheckpointKey{Origin: c.Origin, Signer: signer}
			if trusted != nil {
				k.Trusted = func() (note.Verifiers, error) { return trusted, nil }
			}
			for name, b := range map[string][]byte{"signed text holds a blank line": smuggled, "our name and hash, another key": collide} {
				c, err := parseBody(b)
				require.NoError(t, err)
				require.Error(t, k.checkSigned(b, c), "%s (signer %T, trusted %v)", name, signer, trusted != nil)
			}
		}
	}
	_, _, err = OpenCheckpoint(smuggled, note.VerifierList(ourV))
	require.Error(t, err, "a public reader refuses it")
}
