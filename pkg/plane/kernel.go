package plane

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"path"
	"slices"
	"strings"

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

// kernelFramework is the law the kernel answers to; it is registered at
// bootstrap and kept under registries/frameworks/.
const kernelFramework = `---
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

// kernelSpec is the kernel's spec manifest, kept under registries/specs/.
const kernelSpec = `{
  "spec_id": "SPEC-KERNEL-001",
  "framework_id": "FMWK-KERNEL-001",
  "title": "Control Plane kernel: core config and schemas",
  "version": "1.0.0",
  "status": "active",
  "assets": ["config/*.json", "schemas/*.json"],
  "invariants": ["config/governed_roots.json lists the governed roots", "config/trusted_keys.json lists the trusted verifier keys"]
}
`

// GovernedRootsConfig is config/governed_roots.json.
type GovernedRootsConfig struct {
	GovernedRoots []string `json:"governed_roots"`
}

// kernelFiles returns the kernel's files by plane-relative path.
func kernelFiles(trusted []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	roots, err := json.MarshalIndent(GovernedRootsConfig{GovernedRoots: DefaultGovernedRoots}, "", "  ")
	if err != nil {
		return nil, err
	}
	files["config/governed_roots.json"] = append(roots, '\n')
	files["config/router_policy.json"] = []byte(routerPolicy)
	files["config/trusted_keys.json"] = trusted
	names, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if strings.HasPrefix(n, "cp-test.") {
			continue // test-only schemas are not part of the plane
		}
		b, err := fs.ReadFile(schemas.FS, n)
		if err != nil {
			return nil, err
		}
		files["schemas/"+n] = b
	}
	return files, nil
}

// routerPolicy is the router policy placeholder: no routes yet, and a
// default that routes nothing to an LLM.
const routerPolicy = `{
  "routes": [],
  "deny": [],
  "default": {"handler": "unrouted", "mode": "tools_first", "prompt_pack_id": ""}
}
`

// kernelManifest builds the kernel's manifest over its files.
func kernelManifest(files map[string][]byte) *manifest.Manifest {
	m := &manifest.Manifest{
		SchemaVersion: manifest.SchemaVersion, PackageID: KernelID, Version: KernelVersion, PackageType: "kernel",
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
