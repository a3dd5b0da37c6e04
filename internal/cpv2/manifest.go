// Package cpv2 brings what the Python Control Plane v2 wrote into our forms
// (DESIGN.md §16). Its manifests are converted, never accepted raw: a CPv2
// manifest is not one of ours and was never signed by a key this plane
// trusts, so ConvertManifest writes a new source manifest of ours from it,
// which cp-pkg stage then hashes, sizes and archives, and which is signed
// here like any package. CPv2's own manifest_hash and asset hashes are kept
// as provenance only (metadata.cpv2), and Verify compares the asset hashes
// CPv2 declared with the files before stage replaces them with its own.
package cpv2

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/control-plane/cp/internal/plane"
	"github.com/control-plane/cp/internal/stage"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/manifest"
)

// Classifications maps CPv2's asset classifications to ours (the README's
// table). A classification not listed (or "other") is taken from the
// asset's path, as stage does, with tests/ as test.
var Classifications = map[string]string{
	"module":        "module",
	"library":       "library",
	"gate":          "module",
	"documentation": "doc",
	"doc":           "doc",
	"spec_asset":    "spec",
	"spec_manifest": "spec",
	"law_doc":       "framework",
	"framework":     "framework",
	"registry":      "config",
	"config":        "config",
	"schema":        "schema",
	"policy":        "policy",
	"script":        "script",
	"prompt":        "prompt",
	"test":          "test",
}

// PackageTypes maps CPv2's package types to ours (the README's table).
// kernel is not among them: the kernel is this plane's own.
var PackageTypes = map[string]string{
	"module":        "standard",
	"library":       "standard",
	"baseline":      "standard",
	"documentation": "standard",
	"standard":      "standard",
	"agent":         "agent",
	"framework":     "framework",
	"spec":          "spec",
	"prompt_pack":   "prompt_pack",
	"config":        "config",
}

// Error is a CPv2 manifest that cannot be converted; Code is
// MANIFEST_INVALID (exit 3), with the reason.
type Error struct{ Msg string }

func (e *Error) Error() string { return "CPv2 manifest: " + e.Msg }

// Code returns MANIFEST_INVALID.
func (e *Error) Code() string { return "MANIFEST_INVALID" }

func errorf(format string, args ...any) *Error { return &Error{fmt.Sprintf(format, args...)} }

// Converted is a CPv2 manifest in our form.
type Converted struct {
	// Manifest is our source manifest: each asset's sha256 is CPv2's
	// (as "sha256:" + hex) or "", and its size 0, until stage fills both
	// from the files. metadata.cpv2 keeps what CPv2 stated that our form
	// does not hold.
	Manifest *manifest.Manifest
	// Roots are the top directories ("docs/", "tests/") its assets need
	// beyond the default governed roots, sorted: the import adds them to
	// config/governed_roots.json (through the trust-change path) first.
	Roots []string
	// Hashes are the asset hashes CPv2 declared, by path (for Verify).
	Hashes map[string]string
	// Notes say every decision the conversion made.
	Notes []string
}

// FrameworkOf answers the framework a registered spec answers to.
type FrameworkOf func(specID string) (string, error)

var hexRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{64}$`) })

// ConvertManifest converts a CPv2 manifest (JSON) into our form. The spec
// must be registered here: frameworkOf gives its framework, which is the
// package's framework_id when CPv2 states none and must be the one it
// states. Refused (with the reason): a package id not of our form, a
// package type with no mapping (kernel included), a version that is not
// semantic, an asset on a path no package may write, a hash that is not
// SHA-256 hex, and anything our manifest rules refuse.
func ConvertManifest(b []byte, frameworkOf FrameworkOf) (*Converted, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, errorf("not valid JSON: %v", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, errorf("not a JSON object")
	}
	str := func(k string) string { s, _ := doc[k].(string); return strings.TrimSpace(s) }
	c := &Converted{Hashes: map[string]string{}}
	kept := map[string]any{}
	m := &manifest.Manifest{SchemaVersion: manifest.SchemaVersion, PackageID: str("package_id"), SpecID: str("spec_id")}

	if !manifest.ValidPackageID(m.PackageID) {
		return nil, errorf("package_id %q is not a package id of ours (PKG-[A-Z0-9-]+)", m.PackageID)
	}
	if m.Version, err = readVersion(str("version")); err != nil {
		return nil, errorf("version %q: %v", str("version"), err)
	}
	if m.Version != str("version") {
		c.note("version %q read as %s", str("version"), m.Version)
	}
	pt := str("package_type")
	if m.PackageType = PackageTypes[pt]; m.PackageType == "" {
		return nil, errorf("package_type %q has no mapping (want one of %s)", pt, strings.Join(sortedKeys(PackageTypes), ", "))
	}
	if pt != m.PackageType {
		c.note("package_type %s is %s here", pt, m.PackageType)
	}
	kept["package_type"] = pt
	if m.SpecID == "" {
		return nil, errorf("spec_id is missing: a package answers to a spec")
	}
	fw, err := frameworkOf(m.SpecID)
	if err != nil {
		return nil, err
	}
	switch stated := str("framework_id"); {
	case stated == "":
		c.note("framework_id %s: the framework of spec %s", fw, m.SpecID)
	case stated != fw:
		return nil, errorf("framework_id %s, but spec %s answers to %s", stated, m.SpecID, fw)
	}
	m.FrameworkID = fw
	m.PlaneID = planeOf(c, str("plane_id"), str("tier"))
	for _, k := range []string{"manifest_hash", "tier", "schema_version", "plane_id"} {
		if x, ok := doc[k]; ok {
			kept[k] = x
		}
	}

	deps, _ := doc["dependencies"].([]any)
	var other []any
	for _, d := range deps {
		s, _ := d.(string)
		if _, err := manifest.ParseDependency(s); err == nil {
			m.Dependencies = append(m.Dependencies, s)
			continue
		}
		other = append(other, d)
	}
	if len(other) > 0 {
		kept["dependencies"] = other
		c.note("%d dependencies name no package of ours and are kept in metadata.cpv2", len(other))
	}

	assets, ok := doc["assets"].([]any)
	if !ok && doc["assets"] != nil {
		return nil, errorf("assets is not an array")
	}
	classes := map[string]any{}
	roots := map[string]bool{}
	for i, x := range assets {
		a, ok := x.(map[string]any)
		if !ok {
			return nil, errorf("assets[%d] is not an object", i)
		}
		p, _ := a["path"].(string)
		for _, r := range plane.Reserved {
			if p == strings.TrimSuffix(r, "/") || strings.HasPrefix(p, r) {
				return nil, errorf("assets[%d] %q: no package may write under %s", i, p, r)
			}
		}
		orig, _ := a["classification"].(string)
		cls := Classifications[orig]
		if cls == "" {
			cls = classify(p)
			if orig != "other" {
				c.note("%s: classification %q is unknown, %s from its path", p, orig, cls)
			}
		}
		if orig != cls {
			classes[p] = orig
		}
		hash := ""
		if h, ok := a["sha256"].(string); ok {
			hx := strings.TrimPrefix(strings.ToLower(h), "sha256:")
			if !hexRE().MatchString(hx) {
				return nil, errorf("assets[%d] %q: sha256 %q is not SHA-256 hex", i, p, h)
			}
			hash = "sha256:" + hx
			c.Hashes[p] = hash
		}
		top, _, _ := strings.Cut(p, "/")
		if strings.Contains(p, "/") && !slices.Contains(plane.DefaultGovernedRoots, top+"/") {
			roots[top+"/"] = true
		}
		m.Assets = append(m.Assets, manifest.Asset{Path: p, SHA256: hash, Classification: cls})
	}
	if len(classes) > 0 {
		kept["classifications"] = classes
	}
	for r := range roots {
		c.Roots = append(c.Roots, r)
	}
	slices.Sort(c.Roots)
	if len(c.Roots) > 0 {
		c.note("assets under %s, outside the default governed roots", strings.Join(c.Roots, ", "))
	}
	if md, ok := doc["metadata"].(map[string]any); ok {
		m.Metadata = md
	} else {
		m.Metadata = map[string]any{}
	}
	m.Metadata["cpv2"] = kept
	if err := check(m); err != nil {
		return nil, err
	}
	c.Manifest = m
	return c, nil
}

func (c *Converted) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

// check holds the converted manifest to our manifest rules, with the
// hashes and sizes stage will fill standing in.
func check(m *manifest.Manifest) error {
	probe := *m
	probe.Assets = slices.Clone(m.Assets)
	for i := range probe.Assets {
		if probe.Assets[i].SHA256 == "" {
			probe.Assets[i].SHA256 = "sha256:" + strings.Repeat("0", 64)
		}
	}
	b, err := probe.Marshal()
	if err == nil {
		_, err = manifest.Parse(b)
	}
	if err != nil {
		return errorf("converted, it breaks our manifest rules: %v", err)
	}
	return nil
}

// planeOf is our plane_id for CPv2's plane_id and tier: the first that is
// ho1, ho2 or ho3 in any case, else ho3.
func planeOf(c *Converted, planeID, tier string) string {
	for _, v := range []string{planeID, tier} {
		if l := strings.ToLower(v); l == "ho1" || l == "ho2" || l == "ho3" {
			return l
		}
	}
	c.note("plane_id ho3: CPv2's plane_id %q and tier %q name no tier", planeID, tier)
	return "ho3"
}

// classify is an asset's classification from its path: stage's rule, and
// tests/ as test.
func classify(p string) string {
	if top, _, _ := strings.Cut(p, "/"); top == "tests" || top == "test" {
		return "test"
	}
	return stage.Classify(p)
}

// readVersion reads a version as CPv2 wrote it: semantic, or with a "v" or
// fewer than three parts, completed with zeros.
func readVersion(v string) (string, error) {
	if manifest.ValidVersion(v) {
		return v, nil
	}
	w := strings.TrimPrefix(strings.TrimPrefix(v, "v"), "V")
	parts := strings.Split(w, ".")
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	if w = strings.Join(parts, "."); !manifest.ValidVersion(w) {
		return "", fmt.Errorf("not a semantic version")
	}
	return w, nil
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Finding is one asset whose file does not match what CPv2 declared.
type Finding struct {
	Path    string `json:"path"`
	Problem string `json:"problem"`
}

// Verify compares the converted manifest's assets with the files of a CPv2
// package directory: each must be there, as a regular file, and hash to
// what CPv2 declared (when it declared a hash). The findings are in asset
// order; none means stage may fill the hashes from the files.
func (c *Converted) Verify(fsys fs.FS) []Finding {
	var out []Finding
	for _, a := range c.Manifest.Assets {
		f, err := fsys.Open(a.Path)
		if err != nil {
			out = append(out, Finding{a.Path, "missing: " + err.Error()})
			continue
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			out = append(out, Finding{a.Path, "not a regular file"})
			continue
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			out = append(out, Finding{a.Path, "unreadable: " + err.Error()})
			continue
		}
		got := "sha256:" + hex.EncodeToString(h.Sum(nil))
		if want := c.Hashes[a.Path]; want != "" && want != got {
			out = append(out, Finding{a.Path, fmt.Sprintf("CPv2 declared %s, the file is %s", want, got)})
		}
	}
	return out
}
