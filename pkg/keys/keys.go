// Package keys loads and makes the Ed25519 note keys (golang.org/x/mod/sumdb/note)
// that sign checkpoints and packages.
//
// A key is given either as the key text itself or as the path of a file
// holding it, as in CONTROL_PLANE_SIGNING_KEY and CONTROL_PLANE_VERIFY_KEY:
// signer keys start with "PRIVATE+KEY+", verifier keys have the form
// "name+hash+base64". Anything else is read as a path.
package keys

import (
	"crypto/rand"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/control-plane/cp/internal/regfile"
)

// Error is a key that cannot be loaded; Code is KEY_INVALID.
type Error struct {
	Spec string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("key %s: %v", e.Spec, e.Err) }

// Code returns KEY_INVALID.
func (e *Error) Code() string { return "KEY_INVALID" }

func (e *Error) Unwrap() error { return e.Err }

// Generate returns a new signer key and its verifier key for name.
func Generate(name string) (signer, verifier string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// Signer loads a signer key from spec (the key or a path to it).
func Signer(spec string) (note.Signer, error) {
	text, err := resolve(spec, "PRIVATE+KEY+")
	if err != nil {
		return nil, &Error{Spec: redact(spec), Err: err}
	}
	s, err := note.NewSigner(text)
	if err != nil {
		return nil, &Error{Spec: redact(spec), Err: err}
	}
	return s, nil
}

// Verifier loads a verifier key from spec (the key or a path to it).
func Verifier(spec string) (note.Verifier, error) {
	text, err := resolve(spec, "")
	if err != nil {
		return nil, &Error{Spec: spec, Err: err}
	}
	v, err := NewVerifier(text)
	if err != nil {
		return nil, &Error{Spec: spec, Err: err}
	}
	return v, nil
}

// resolve returns the key text: spec itself when it looks like a key,
// else the trimmed contents of the file spec names.
func resolve(spec, prefix string) (string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return "", fmt.Errorf("empty")
	}
	if prefix != "" && strings.HasPrefix(spec, prefix) {
		return spec, nil
	}
	if prefix == "" && looksLikeVerifier(spec) {
		return spec, nil
	}
	b, err := regfile.ReadFile(spec)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// looksLikeVerifier reports whether s parses as a verifier key
// (name+hash+base64); a file path does not.
func looksLikeVerifier(s string) bool {
	_, err := note.NewVerifier(s)
	return err == nil
}

// redact keeps a private key out of error messages.
func redact(spec string) string {
	if strings.HasPrefix(strings.TrimSpace(spec), "PRIVATE+KEY+") {
		return "PRIVATE+KEY+(redacted)"
	}
	return spec
}
