package gate

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/control-plane/cp/pkg/archive"
)

var sprintf = fmt.Sprintf

// Source is what preflight examines: a package source tree (Dir, whose
// manifest.json is at its root; or Tree, a tree already read by ReadTree)
// or a staged archive (Archive, with its signature at Archive+".sig"; with
// Contents, what archive.Extract or Scan already read from it, so that it is
// not read twice).
type Source struct {
	Dir      string
	Tree     *Tree
	Archive  string
	Contents *archive.Contents
	// SigRead says Sig holds the signature already read from Archive+".sig"
	// (nil: there was none), so that the bytes judged are the bytes kept.
	SigRead bool
	Sig     []byte
	// Expect is what an upstream step (cp-pkg stage or sign, piped in)
	// judged; Preflight refuses an archive that no longer matches it.
	Expect Expect
}

// Expect is what a stage or sign result says of an archive. Each member
// that is set must hold for the archive judged, else Preflight returns a
// *MismatchError: what is installed or passed is what was judged upstream.
type Expect struct {
	PackageID, ArchiveSHA256, ManifestHash string
}

// MismatchError is an archive that is not the one the request described:
// HASH_MISMATCH (or PACKAGE_ID_MISMATCH), a refusal.
type MismatchError struct {
	Archive, Field, Got, Want string
}

func (e *MismatchError) Error() string {
	if e.Field == "package_id" {
		return fmt.Sprintf("the manifest declares package %s, not %s", e.Got, e.Want)
	}
	return fmt.Sprintf("%s has %s %s, not %s as requested (changed since it was staged or signed?)", e.Archive, e.Field, e.Got, e.Want)
}

// Code returns HASH_MISMATCH, or PACKAGE_ID_MISMATCH for the package id.
func (e *MismatchError) Code() string {
	if e.Field == "package_id" {
		return "PACKAGE_ID_MISMATCH"
	}
	return "HASH_MISMATCH"
}

// ErrorDetails names the field and both values.
func (e *MismatchError) ErrorDetails() map[string]any {
	return map[string]any{"field": e.Field, "got": e.Got, "want": e.Want}
}

// check returns the first member of x that the archive does not hold.
func (x Expect) check(archive, id, archiveHash, mhash string) error {
	for _, c := range []struct{ field, want, got string }{
		{"package_id", x.PackageID, id}, {"archive_sha256", x.ArchiveSHA256, archiveHash}, {"manifest_hash", x.ManifestHash, mhash},
	} {
		if c.want != "" && c.want != c.got {
			return &MismatchError{Archive: filepath.Base(archive), Field: c.field, Got: c.got, Want: c.want}
		}
	}
	return nil
}

// Options configure Preflight.
type Options struct {
	// AllowUnsigned turns a missing signature into a recorded waiver
	// (CONTROL_PLANE_ALLOW_UNSIGNED=1); it never excuses an invalid one.
	AllowUnsigned bool
	// VerifyKey is CONTROL_PLANE_VERIFY_KEY: one more trusted key.
	VerifyKey string
	// Limits cap what an archive may hold (zero fields: the defaults of
	// archive.DefaultLimits).
	Limits archive.Limits
}

// Report is a preflight's outcome: every check an install would run short
// of writing.
type Report struct {
	Passed        bool     `json:"passed"`
	PackageID     string   `json:"package_id"`
	Version       string   `json:"version"`
	ManifestHash  string   `json:"manifest_hash"`
	ArchiveSHA256 string   `json:"archive_sha256,omitempty"`
	Results       []Result `json:"results"`
}

// FirstFailure describes the report's first failed check, for a one-line
// message: "GATE: CODE PATH: message".
func (rep *Report) FirstFailure() string {
	for _, r := range rep.Results {
		if !r.Passed && len(r.Errors) > 0 {
			return fmt.Sprintf("%s: %s %s: %s", r.Gate, r.Errors[0].Code, r.Errors[0].Path, r.Errors[0].Message)
		}
	}
	return "a check failed"
}

// Preflight runs the package gates against the plane at root without
// writing anything anywhere: archive safety and the manifest (errors with
// codes ARCHIVE_UNSAFE and MANIFEST_INVALID, returned as err), then
// G0A, G1, G5, VERSION and OWNERSHIP as Results, in DESIGN.md §6's order
// (every gate runs; the first that fails names the refusal). It is what
// cp-pkg preflight and stage run, and what cp-install install runs first.
func Preflight(ctx context.Context, root string, src Source, opts Options) (*Report, error) {
	return preflight(ctx, root, src, opts)
}
