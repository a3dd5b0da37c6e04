package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a C2SP tlog-checkpoint: the log's origin, tree size and root
// hash, and optional extension lines. Its text form is
//
//	<origin>\n<size in decimal>\n<base64 root>\n[<extension>\n...]
//
// and a signed checkpoint is that text as a C2SP signed note.
type Checkpoint struct {
	Origin     string
	Size       int64
	Root       tlog.Hash
	Extensions []string
}

// Text returns the checkpoint body.
func (c Checkpoint) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
	for _, e := range c.Extensions {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.String()
}

// Sign returns the checkpoint as a signed note.
func (c Checkpoint) Sign(signers ...note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.Text()}, signers...)
}

// ParseCheckpoint parses a checkpoint body strictly: a non-empty origin, a
// canonical decimal size, a base64 32-byte root, non-empty extension lines,
// and a final newline.
func ParseCheckpoint(text string) (Checkpoint, error) {
	var c Checkpoint
	if !strings.HasSuffix(text, "\n") {
		return c, errors.New("checkpoint does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return c, errors.New("checkpoint needs origin, size and root lines")
	}
	if lines[0] == "" || strings.TrimSpace(lines[0]) != lines[0] {
		return c, errors.New("checkpoint origin is empty or padded")
	}
	c.Origin = lines[0]
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint size %q is not a canonical decimal", lines[1])
	}
	c.Size = n
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint root %q is not a base64 SHA-256 hash", lines[2])
	}
	copy(c.Root[:], root)
	for _, e := range lines[3:] {
		if e == "" {
			return c, errors.New("checkpoint has an empty extension line")
		}
		c.Extensions = append(c.Extensions, e)
	}
	return c, nil
}

// SignatureError says why a signed checkpoint's signatures were not accepted.
type SignatureError struct {
	Signers []string // key names on the note
	Reason  string
}

func (e *SignatureError) Error() string { return e.Reason }

// OpenCheckpoint parses a checkpoint file's content: either a bare body or a
// signed note. Fail closed both ways: with verifiers, the checkpoint must be
// signed and at least one signature must verify (none by a known key may be
// invalid); without verifiers, a signed checkpoint is refused because its
// signature cannot be checked. signed reports whether the note carried any
// signature.
func OpenCheckpoint(msg []byte, verifiers note.Verifiers) (c Checkpoint, signed bool, err error) {
	if !bytes.Contains(msg, []byte("\n\n")) {
		c, err = ParseCheckpoint(string(msg))
		if err == nil && verifiers != nil {
			err = &SignatureError{Reason: "the checkpoint is not signed, but a verifier key was given: a signature by it is required"}
		}
		return c, false, err
	}
	if verifiers == nil {
		verifiers = note.VerifierList()
	}
	n, err := note.Open(msg, verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			names := make([]string, 0, len(unverified.Note.UnverifiedSigs))
			for _, s := range unverified.Note.UnverifiedSigs {
				names = append(names, s.Name)
			}
			return c, true, &SignatureError{Signers: names,
				Reason: fmt.Sprintf("signed by %s, and no given verifier key checks it (pass --verify-key or set CONTROL_PLANE_VERIFY_KEY)", strings.Join(names, ", "))}
		case errors.As(err, &invalid):
			return c, true, &SignatureError{Signers: []string{invalid.Name}, Reason: fmt.Sprintf("signature by %s does not verify", invalid.Name)}
		}
		return c, true, err
	}
	c, err = ParseCheckpoint(n.Text)
	return c, true, err
}
