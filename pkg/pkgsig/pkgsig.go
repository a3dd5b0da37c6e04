package pkgsig

import (
	"errors"
	"fmt"
	"github.com/control-plane/cp/pkg/manifest"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Purpose is the first line of every package statement.
const Purpose = "control-plane/package/v1"

// Environment variables that callers read and pass in; this package reads
// no environment itself.
const (
	EnvVerifyKey     = "CONTROL_PLANE_VERIFY_KEY"     // one more key, trusted for every purpose
	EnvAllowUnsigned = "CONTROL_PLANE_ALLOW_UNSIGNED" // "1" waives a missing signature
)

// Error codes of *Error.
const (
	CodeMissing   = "SIGNATURE_MISSING"
	CodeInvalid   = "SIGNATURE_INVALID"
	CodeUntrusted = "KEY_UNTRUSTED"
)

// Statement is what a package signature vouches for.
type Statement struct {
	PackageID    string // PKG-...
	Version      string // semver without a leading v
	ManifestHash string // sha256:<hex>, manifest.Manifest.Hash
	ArchiveHash  string // sha256:<hex> of the archive file's bytes
}

// Text returns the note text: the purpose line and the four fields, each
// followed by a newline.
func (s Statement) Text() string {
	return Purpose + "\n" + s.PackageID + "\n" + s.Version + "\n" + s.ManifestHash + "\n" + s.ArchiveHash + "\n"
}

// check refuses a statement whose text would not parse back to it.
func (s Statement) check() error {
	switch {
	case !manifest.ValidPackageID(s.PackageID):
		return fmt.Errorf("package id %q is not PKG-[A-Z0-9-]+", s.PackageID)
	case !manifest.ValidVersion(s.Version):
		return fmt.Errorf("version %q is not a semantic version", s.Version)
	case !validHash(s.ManifestHash):
		return fmt.Errorf("manifest hash %q is not sha256:<64 lowercase hex>", s.ManifestHash)
	case !validHash(s.ArchiveHash):
		return fmt.Errorf("archive hash %q is not sha256:<64 lowercase hex>", s.ArchiveHash)
	}
	return nil
}

func validHash(h string) bool {
	hex, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Sign returns the signature file for s: s.Text() as a note signed by
// signer. It refuses a malformed statement.
func Sign(s Statement, signer note.Signer) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("pkgsig: sign: %w", err)
	}
	if signer == nil {
		return nil, errors.New("pkgsig: sign: no signer key")
	}
	msg, err := note.Sign(&note.Note{Text: s.Text()}, signer)
	if err != nil {
		return nil, fmt.Errorf("pkgsig: sign: %w", err)
	}
	return msg, nil
}

// Error is a package signature that does not verify. Code returns one of
// CodeMissing, CodeInvalid or CodeUntrusted.
type Error struct {
	code    string
	Reason  string // what is wrong, in lower case
	KeyName string // the key concerned, when one is
}

func (e *Error) Error() string { return "package signature: " + e.Reason }

// Code returns SIGNATURE_MISSING, SIGNATURE_INVALID or KEY_UNTRUSTED.
func (e *Error) Code() string { return e.code }

// ErrorDetails returns the key concerned for the error envelope.
func (e *Error) ErrorDetails() map[string]any {
	if e.KeyName == "" {
		return nil
	}
	return map[string]any{"key_name": e.KeyName}
}

func sigError(code, key, format string, args ...any) *Error {
	return &Error{code: code, KeyName: key, Reason: fmt.Sprintf(format, args...)}
}

// Verify checks that sig, the bytes of a signature file (nil when there is
// none: SIGNATURE_MISSING; a file that is present but empty is
// SIGNATURE_INVALID, never a missing signature that a waiver could excuse),
// is a signature of want by one of verifiers, and returns the name
// of the key that made it. Failures are *Error (see the package comment);
// a malformed want is a caller's bug and a plain error.
//
// Verify parses the note and checks signatures by known keys first (a bad
// one is SIGNATURE_INVALID), then the statement, and only then whether any
// signature is by a trusted key, so that a note made for another archive
// is reported as such whoever signed it.
func Verify(sig []byte, want Statement, verifiers note.Verifiers) (keyName string, err error) {
	if err := want.check(); err != nil {
		return "", fmt.Errorf("pkgsig: verify: expected statement: %w", err)
	}
	if sig == nil {
		return "", sigError(CodeMissing, "", "package %s %s is not signed", want.PackageID, want.Version)
	}
	if len(sig) == 0 {
		return "", sigError(CodeInvalid, "", "the signature file of %s %s is empty", want.PackageID, want.Version)
	}
	n, err := note.Open(sig, verifiers)
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var bad *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			n = unverified.Note
		case errors.As(err, &bad):
			return "", sigError(CodeInvalid, bad.Name, "signature by %s+%08x does not verify", bad.Name, bad.Hash)
		default:
			return "", sigError(CodeInvalid, "", "not a signed note: %v", err)
		}
	}
	if reason := mismatch(n.Text, want); reason != "" {
		return "", sigError(CodeInvalid, "", "%s", reason)
	}
	if len(n.Sigs) == 0 {
		if len(n.UnverifiedSigs) == 0 { // note.Open never returns this; stay closed if it does
			return "", sigError(CodeInvalid, "", "note has no signatures")
		}
		names := make([]string, len(n.UnverifiedSigs))
		for i, s := range n.UnverifiedSigs {
			names[i] = fmt.Sprintf("%s+%08x", s.Name, s.Hash)
		}
		return "", sigError(CodeUntrusted, n.UnverifiedSigs[0].Name,
			"signed only by %s, not trusted for packages (config/trusted_keys.json or %s)", strings.Join(names, ", "), EnvVerifyKey)
	}
	return n.Sigs[0].Name, nil
}

// mismatch says how a note text differs from want's, or returns "".
func mismatch(text string, want Statement) string {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if lines[0] != Purpose {
		return fmt.Sprintf("note is not a package signature: its first line is %.80q, want %q", lines[0], Purpose)
	}
	if len(lines) != 5 || !strings.HasSuffix(text, "\n") {
		return fmt.Sprintf("package statement has %d lines, want 5", len(lines))
	}
	for _, f := range []struct{ what, got, want string }{
		{"package", lines[1], want.PackageID},
		{"version", lines[2], want.Version},
		{"manifest hash", lines[3], want.ManifestHash},
		{"archive hash", lines[4], want.ArchiveHash},
	} {
		if f.got != f.want {
			return fmt.Sprintf("signed for %s %.80q, want %s", f.what, f.got, f.want)
		}
	}
	return ""
}

// Waiver records that a missing signature was allowed.
type Waiver struct {
	Reason string // for the ledger's weakened-control record
}

// Result is the outcome of Check that lets an install go on.
type Result struct {
	Signed  bool   // a trusted key signed want
	KeyName string // that key's name
	Waived  bool   // unsigned, and allowUnsigned waived it; Waiver says so
	Waiver  Waiver
}

// Check is gate G5: Verify, except that with allowUnsigned (the caller's
// reading of CONTROL_PLANE_ALLOW_UNSIGNED=1) a missing signature, and
// only a missing one, becomes a waiver instead of an error.
func Check(sig []byte, want Statement, verifiers note.Verifiers, allowUnsigned bool) (Result, error) {
	name, err := Verify(sig, want, verifiers)
	if err == nil {
		return Result{Signed: true, KeyName: name}, nil
	}
	var e *Error
	if allowUnsigned && errors.As(err, &e) && e.code == CodeMissing {
		return Result{Waived: true, Waiver: Waiver{Reason: fmt.Sprintf(
			"package %s %s is unsigned; signature check (G5) waived by %s=1", want.PackageID, want.Version, EnvAllowUnsigned)}}, nil
	}
	return Result{}, err
}
