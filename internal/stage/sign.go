package stage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/control-plane/cp/internal/atomicfile"
	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/pkg/pkgsig"
	"golang.org/x/mod/sumdb/note"
)

// SignResult is what Sign made: the signature file and the statement
// it signs.
type SignResult struct {
	Signature     string `json:"signature"`
	Archive       string `json:"archive"`
	KeyName       string `json:"key_name"`
	KeyHash       string `json:"key_hash"`
	Purpose       string `json:"purpose"`
	PackageID     string `json:"package_id"`
	Version       string `json:"version"`
	ManifestHash  string `json:"manifest_hash"`
	ArchiveSHA256 string `json:"archive_sha256"`
}

// Hashes are what the archive to sign is expected to hold (the hashes a
// piped stage reported); "" checks nothing.
type Hashes struct {
	ArchiveSHA256 string
	ManifestHash  string
}

// Sign reads archive a, checked as the installer checks it (archive rules,
// its files against its manifest, and expect), and writes a.sig, a package
// signature by signer, replacing any earlier one atomically. Errors:
// HASH_MISMATCH, UNDECLARED or MISSING (the archive does not match its
// manifest or expect), ARCHIVE_UNSAFE, MANIFEST_INVALID, USAGE (no such
// archive), and filesystem errors.
func Sign(a string, signer note.Signer, expect Hashes) (*SignResult, error) {
	f, err := regfile.Open(a)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef("--archive %s does not exist", a)
	}
	if err != nil {
		return nil, err
	}
	contents, err := archive.Scan(f, archive.DefaultLimits())
	f.Close()
	if err != nil {
		return nil, err
	}
	m, err := manifest.Parse(contents.Manifest)
	if err != nil {
		return nil, err
	}
	mhash, err := m.Hash()
	if err != nil {
		return nil, err
	}
	if err := MatchManifest(contents, m, contents.Manifest); err != nil {
		e := err.(*Error)
		e.msg = a + ": " + e.msg
		return nil, e
	}
	ahash := "sha256:" + contents.ArchiveSHA256
	for field, got := range map[string]string{"archive_sha256": ahash, "manifest_hash": mhash} {
		if want := map[string]string{"archive_sha256": expect.ArchiveSHA256, "manifest_hash": expect.ManifestHash}[field]; want != "" && want != got {
			return nil, errorf("HASH_MISMATCH", "%s has %s %s, not %s as requested (changed since it was staged?)", a, field, got, want)
		}
	}
	st := pkgsig.Statement{PackageID: m.PackageID, Version: m.Version, ManifestHash: mhash, ArchiveHash: ahash}
	sig, err := pkgsig.Sign(st, signer)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(filepath.Dir(a), filepath.Base(a)+".sig"), sig, 0o644); err != nil {
		return nil, err
	}
	return &SignResult{Signature: a + ".sig", Archive: a, KeyName: signer.Name(),
		KeyHash: fmt.Sprintf("%08x", signer.KeyHash()), Purpose: pkgsig.Purpose, PackageID: m.PackageID,
		Version: m.Version, ManifestHash: mhash, ArchiveSHA256: ahash}, nil
}
