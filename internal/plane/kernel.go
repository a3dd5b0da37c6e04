package plane

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/control-plane/cp/internal/regfile"
	"github.com/control-plane/cp/internal/trust"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/schemas"
)

// The kernel package: the plane's own core config and schemas, installed
// identically on every tier so that kernel parity (G0K) can be checked.
const (
	KernelID        = "PKG-KERNEL-001"
	KernelVersion   = "1.0.0"
	KernelFramework = "FMWK-KERNEL-001"
	KernelSpec      = "SPEC-KERNEL-001"
)

// DefaultGovernedRoots are the directories packages may write (DESIGN.md §4).
var DefaultGovernedRoots = []string{"frameworks/", "specs/", "schemas/", "policies/", "lib/", "scripts/",
	"modules/", "governed_prompts/", "config/"}

// Reserved are plane paths no package may target.
var Reserved = []string{"ledger/", "installed/", "registries/", "versions/", "packages_store/", "_staging/", "_journal/",
	"tier.json", "planes/"}

// KernelFrameworkDocument is the law the kernel answers to; it is registered at
// bootstrap and kept under registries/frameworks/.
const KernelFrameworkDocument = `---
framework_id: FMWK-KERNEL-001
title: Control Plane kernel
version: 1.0.0
status: active
---
# Control Plane kernel

The kernel package holds the plane's own configuration and schemas. It is
installed identically on HO3, HO2 and HO1.

- MUST install the kernel package with the same manifest hash on every tier.
- MUST keep every file under a governed root owned by exactly one installed package.
- MUST record every install, registration and refusal in the governance ledger.
- MUST NOT let a lower tier write a higher tier's files or ledgers.
`

// KernelSpecManifest is the kernel's spec manifest, kept under registries/specs/.
const KernelSpecManifest = `{
  "spec_id": "SPEC-KERNEL-001",
  "framework_id": "FMWK-KERNEL-001",
  "title": "Control Plane kernel: core config and schemas",
  "version": "1.0.0",
  "status": "active",
  "assets": ["config/*.json", "config/policy.cedar", "schemas/*.json"],
  "invariants": ["config/governed_roots.json lists the governed roots", "config/trusted_keys.json lists the trusted verifier keys", "operator configuration (config/governance.json, providers.json, router_policy.json, policy.cedar) arrives only in a package of type config"]
}
`

// GovernedRootsConfig is config/governed_roots.json.
type GovernedRootsConfig struct {
	GovernedRoots []string `json:"governed_roots"`
}

// GovernedRoots reads the plane's config/governed_roots.json. Unreadable or
// malformed is an error: the gates fail closed.
func GovernedRoots(root string) ([]string, error) {
	b, err := regfile.ReadNoFollow(filepath.Join(root, "config", "governed_roots.json"))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var c GovernedRootsConfig
	if err := dec.Decode(&c); err != nil || len(c.GovernedRoots) == 0 {
		return nil, &FileError{Path: "config/governed_roots.json", Msg: "malformed or empty governed_roots"}
	}
	return c.GovernedRoots, nil
}

// GovernedRootsFile is, with trust.File, the only file of
// config/ the kernel owns. Operator configuration (providers, router
// policy, governance, Cedar policies) is governed but not kernel (DESIGN.md
// §4): it arrives in a config package.
const GovernedRootsFile = "config/governed_roots.json"

// DefaultGovernedRootsJSON is config/governed_roots.json as bootstrap
// writes it.
func DefaultGovernedRootsJSON() ([]byte, error) {
	roots, err := json.MarshalIndent(GovernedRootsConfig{GovernedRoots: DefaultGovernedRoots}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(roots, '\n'), nil
}

// KernelFiles returns the files of a kernel release by plane-relative
// path: the given governed roots and trusted keys, and the schemas this
// binary embeds. A release is always built by the tool from these, never
// taken from an archive, so that every tier gets the same bytes.
func KernelFiles(governedRoots, trusted []byte) (map[string][]byte, error) {
	files := map[string][]byte{GovernedRootsFile: governedRoots, trust.File: trusted}
	names, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		b, err := fs.ReadFile(schemas.FS, n)
		if err != nil {
			return nil, err
		}
		files["schemas/"+n] = b
	}
	return files, nil
}

// Release is one kernel release as the tool builds it: its files, its
// manifest and its deterministic archive.
type Release struct {
	Version       string
	Files         map[string][]byte
	Manifest      *manifest.Manifest
	ManifestBytes []byte
	ManifestHash  string
	Archive       []byte
	ArchiveSHA256 string
}

// BuildRelease builds kernel release version over files (KernelFiles).
func BuildRelease(version string, files map[string][]byte) (*Release, error) {
	m := kernelManifest(version, files)
	mhash, err := m.Hash()
	if err != nil {
		return nil, err
	}
	mbytes, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	ab, err := kernelArchive(files, mbytes)
	if err != nil {
		return nil, err
	}
	return &Release{Version: version, Files: files, Manifest: m, ManifestBytes: mbytes, ManifestHash: mhash,
		Archive: ab, ArchiveSHA256: SHA256(ab)}, nil
}

// kernelManifest builds the kernel's manifest over its files.
func kernelManifest(version string, files map[string][]byte) *manifest.Manifest {
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion, PackageID: KernelID, Version: version, PackageType: "kernel",
		SpecID: KernelSpec, FrameworkID: KernelFramework, PlaneID: "ho3", Dependencies: []string{},
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		class := "config"
		if path.Dir(p) == "schemas" {
			class = "schema"
		}
		m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: SHA256(files[p]), Size: int64(len(files[p])), Classification: class})
	}
	return m
}

// SHA256 returns "sha256:" and the lowercase hex SHA-256 of b.
func SHA256(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// Under reports whether the slash path p is one of dirs or inside one;
// dirs are written as Reserved and governed_roots.json write them, with or
// without a trailing slash.
func Under(p string, dirs []string) bool {
	for _, d := range dirs {
		d = strings.TrimSuffix(d, "/")
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// FileError is a plane file that cannot be read safely or is malformed
// (config/governed_roots.json). Its code is SOURCE_UNSAFE (invalid input),
// as the gates have always reported it.
type FileError struct{ Path, Msg string }

func (e *FileError) Error() string { return e.Path + ": " + e.Msg }

// Code returns SOURCE_UNSAFE.
func (e *FileError) Code() string { return "SOURCE_UNSAFE" }

// ErrorDetails names the path concerned.
func (e *FileError) ErrorDetails() map[string]any { return map[string]any{"path": e.Path} }

// kernelArchive is the kernel as a deterministic package archive, built
// in memory (a temporary directory would be left behind by a bootstrap
// killed meanwhile).
func kernelArchive(files map[string][]byte, manifestBytes []byte) ([]byte, error) {
	all := make(map[string][]byte, len(files)+1)
	maps.Copy(all, files)
	all[archive.ManifestName] = manifestBytes
	var buf bytes.Buffer
	if err := archive.WriteFiles(&buf, all); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
