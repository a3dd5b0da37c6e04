// Package pkgsig signs and verifies package archives (gate G5, DESIGN.md §6).
//
// # Signature file
//
// A package archive A.tar.gz is signed by A.tar.gz.sig, a C2SP signed note
// (golang.org/x/mod/sumdb/note, Ed25519 keys) whose text is exactly five
// lines, each ending in a newline:
//
//	control-plane/package/v1
//	PKG-DEMO-001
//	1.2.0
//	sha256:<64 hex: the manifest hash, see pkg/manifest>
//	sha256:<64 hex: SHA-256 of the archive file's bytes>
//
// followed by the note's blank line and signature lines ("— name base64").
// The first line states the purpose: a note whose first line is anything
// else (a ledger checkpoint, whose first line is its origin, or a later
// package format) never verifies as a package signature, even when a
// trusted key made it. The statement binds both hashes, so a signature
// follows neither a rebuilt archive of the same manifest nor a re-signed
// manifest in the same archive bytes. Version lines are compared as
// strings: 1.2.0 is not 1.2.0-rc.1.
//
// Verify reports every failure as an *Error with one of
// three codes:
//
//	SIGNATURE_MISSING  no signature bytes (no .sig file, or an empty one)
//	SIGNATURE_INVALID  not a signed note; a first line other than
//	                   control-plane/package/v1; not five lines; a
//	                   statement for another package, version, manifest
//	                   hash or archive hash; or a signature by a trusted key
//	                   that does not verify
//	KEY_UNTRUSTED      a well-formed statement for this package whose only
//	                   signatures are by keys not trusted for packages
//
// CONTROL_PLANE_ALLOW_UNSIGNED=1 (Check's allowUnsigned) turns
// SIGNATURE_MISSING, and nothing else, into a waiver that the caller
// records in the ledger as a weakened control: a present but bad or
// untrusted signature is never waived.
//
// # Trusted keys
//
// Which keys are trusted, and for what, is internal/trust's business
// (config/trusted_keys.json); Verify and Check take the note.Verifiers it
// gives for purpose package, or any others.
//
// # Compatibility
//
// The first line of the statement versions the signature format; a new
// format gets a new first line (control-plane/package/v2), which this
// version refuses.
package pkgsig
