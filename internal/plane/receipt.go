package plane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/control-plane/cp/internal/regfile"
)

// InstalledDir is where receipts live, relative to a tier's root.
const InstalledDir = "installed"

// Receipt is installed/<PKG-ID>/receipt.json: what an install put on disk.
// Beside it, installed/<PKG-ID>/manifest.json holds the package's manifest
// bytes as shipped. Both are read-only (0444) and replaced only by the
// journaled installs and rollbacks of cp-install.
type Receipt struct {
	PackageID     string        `json:"package_id"`
	Version       string        `json:"version"`
	ManifestHash  string        `json:"manifest_hash"`
	ArchiveSHA256 string        `json:"archive_sha256"`
	PlaneID       string        `json:"plane_id"`
	InstalledAt   string        `json:"installed_at"`
	Actor         string        `json:"actor"`
	WorkOrderID   string        `json:"work_order_id"`
	Signature     string        `json:"signature"` // "signed:<key name>" or "waived"
	Files         []ReceiptFile `json:"files"`
}

// ReceiptFile is one installed file.
type ReceiptFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Mode is the mode installed, "0444" or "0555" (an executable asset);
	// "" in receipts written before modes were recorded, meaning "0444".
	Mode string `json:"mode,omitempty"`
}

// FileMode is the permission bits f was installed with.
func (f ReceiptFile) FileMode() fs.FileMode {
	if f.Mode == "0555" {
		return 0o555
	}
	return 0o444
}

// ReceiptPath is where package id's receipt lives, relative to its tier's
// root.
func ReceiptPath(id string) string { return InstalledDir + "/" + id + "/receipt.json" }

// ManifestPath is where package id's installed manifest lives, relative to
// its tier's root.
func ManifestPath(id string) string { return InstalledDir + "/" + id + "/manifest.json" }

// Marshal encodes r as receipt.json is written: indented, newline-ended.
func (r *Receipt) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ReadReceipt reads and strictly decodes the receipt of package id in the
// tier at dir: an unknown field or trailing data is an error (fail closed).
func ReadReceipt(dir, id string) (*Receipt, error) {
	b, err := regfile.ReadNoFollow(filepath.Join(dir, filepath.FromSlash(ReceiptPath(id))))
	if err != nil {
		return nil, err
	}
	return ParseReceipt(b)
}

// ParseReceipt strictly decodes receipt.json bytes.
func ParseReceipt(b []byte) (*Receipt, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Receipt
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("receipt: trailing data")
	}
	for _, f := range r.Files {
		if f.Mode != "" && f.Mode != "0444" && f.Mode != "0555" {
			return nil, fmt.Errorf("receipt: %s: mode %q is neither 0444 nor 0555", f.Path, f.Mode)
		}
	}
	return &r, nil
}

// StorePath is where an installed package version's archive is kept,
// relative to its tier's root; its signature, when it had one, is beside it
// with ".sig" appended. G5 re-verifies installed packages from there.
func StorePath(id, version string) string {
	return "packages_store/" + id + "-" + version + ".tar.gz"
}
