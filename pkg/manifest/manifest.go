package manifest

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/big"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/pkg/archive"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/schemas"
)

// SchemaName is the embedded schema file a manifest is validated against.
const SchemaName = "package_manifest.schema.json"

// SchemaVersion is the schema_version of a manifest whose assets carry no
// mode. Parse reads it and SchemaVersionModes.
const SchemaVersion = "1.2"

// SchemaVersionModes is the schema_version of a manifest whose assets may
// carry a mode (DESIGN.md §6): a reader that knows only 1.2 refuses it
// rather than install an executable file read-only.
const SchemaVersionModes = "1.3"

// Installed file modes an asset may declare: read-only, or read-only and
// executable. An asset without a mode is ModeReadOnly. No write, setuid or
// setgid bit is ever installed.
const (
	ModeReadOnly   = "0444"
	ModeExecutable = "0555"
)

// FileName is the manifest's name at the root of a package archive; it can
// never also be an asset.
const FileName = "manifest.json"

// Manifest is a package manifest. Parse fills it from manifest.json;
// Marshal writes it back.
type Manifest struct {
	SchemaVersion string         `json:"schema_version"`
	PackageID     string         `json:"package_id"`
	Version       string         `json:"version"`
	PackageType   string         `json:"package_type"`
	SpecID        string         `json:"spec_id"`
	FrameworkID   string         `json:"framework_id"`
	PlaneID       string         `json:"plane_id"`
	Dependencies  []string       `json:"dependencies"`
	Assets        []Asset        `json:"assets"`
	Metadata      map[string]any `json:"metadata,omitempty"` // values as jcs.Decode makes them; not hashed
}

// Asset is one file a package installs.
type Asset struct {
	Path           string `json:"path"`   // install path relative to the plane root
	SHA256         string `json:"sha256"` // "sha256:" + 64 lowercase hex
	Size           int64  `json:"size"`
	Classification string `json:"classification"`
	Mode           string `json:"mode,omitempty"` // ModeReadOnly, ModeExecutable, or "" (read-only); schema_version 1.3
}

// FileMode is the mode the asset is installed with: 0555 for an executable
// asset, else 0444.
func (a Asset) FileMode() fs.FileMode {
	if a.Mode == ModeExecutable {
		return 0o555
	}
	return 0o444
}

// InstalledMode is the asset's mode as receipts record it: "0444" or "0555".
func (a Asset) InstalledMode() string {
	if a.Mode == ModeExecutable {
		return ModeExecutable
	}
	return ModeReadOnly
}

// ModeFor is the mode an asset declares for a source file with permission
// bits perm: executable when any execute bit is set, as the archive keeps it
// (0755), else read-only.
func ModeFor(perm fs.FileMode) string {
	if perm&0o111 != 0 {
		return ModeExecutable
	}
	return ModeReadOnly
}

// Error is a manifest that Parse refuses. Its Code is MANIFEST_INVALID.
type Error struct {
	Path    string // JSON pointer to the offending value; "" for the whole document
	Message string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "manifest: " + e.Message
	}
	return "manifest: " + e.Path + ": " + e.Message
}

// Code returns MANIFEST_INVALID.
func (e *Error) Code() string { return "MANIFEST_INVALID" }

// ErrorDetails returns the pointer for the error envelope's details.
func (e *Error) ErrorDetails() map[string]any { return map[string]any{"path": e.Path} }

func invalid(ptr, format string, args ...any) *Error {
	return &Error{Path: ptr, Message: fmt.Sprintf(format, args...)}
}

var compiled = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(SchemaName)
})

// Parse reads a manifest strictly (see the package comment). Every refusal
// is an *Error.
func Parse(b []byte) (*Manifest, error) {
	v, err := jcs.Decode(b)
	if err != nil {
		return nil, invalid("", "not valid JSON: %v", err)
	}
	s, err := compiled()
	if err != nil {
		return nil, fmt.Errorf("manifest: compiling %s: %w", SchemaName, err)
	}
	if ps := s.Validate(v); len(ps) > 0 {
		// Validate walks objects in map order; report the first problem
		// by location so the same text always gives the same error.
		p := slices.MinFunc(ps, func(a, b schema.Problem) int {
			return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Message, b.Message))
		})
		return nil, invalid(p.Path, "%s", explain(v, p))
	}
	m, err := fromValue(v.(map[string]any))
	if err != nil {
		return nil, err
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// explain replaces a pattern mismatch of a version or dependency, whose
// regular expression would say little, with the reason ParseDependency or
// the version rule gives.
func explain(v any, p schema.Problem) string {
	o, _ := v.(map[string]any)
	if p.Path == "/version" {
		if s, ok := o["version"].(string); ok && !ValidVersion(s) {
			return fmt.Sprintf("%q is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE], no leading v, no build metadata)", s)
		}
	}
	if rest, ok := strings.CutPrefix(p.Path, "/dependencies/"); ok {
		deps, _ := o["dependencies"].([]any)
		if i, err := strconv.Atoi(rest); err == nil && i >= 0 && i < len(deps) {
			if s, ok := deps[i].(string); ok {
				if _, err := ParseDependency(s); err != nil {
					return err.Error()
				}
			}
		}
	}
	return p.Message
}

// fromValue converts a schema-valid decoded manifest; the schema has
// already fixed every member's type.
func fromValue(o map[string]any) (*Manifest, error) {
	m := &Manifest{
		SchemaVersion: o["schema_version"].(string),
		PackageID:     o["package_id"].(string),
		Version:       o["version"].(string),
		PackageType:   o["package_type"].(string),
		SpecID:        o["spec_id"].(string),
		FrameworkID:   o["framework_id"].(string),
		PlaneID:       o["plane_id"].(string),
		Dependencies:  []string{},
		Assets:        []Asset{},
	}
	for _, d := range o["dependencies"].([]any) {
		m.Dependencies = append(m.Dependencies, d.(string))
	}
	for i, x := range o["assets"].([]any) {
		a := x.(map[string]any)
		size, ok := integer(a["size"])
		if !ok {
			return nil, invalid(fmt.Sprintf("/assets/%d/size", i), "not an integer in range")
		}
		mode, _ := a["mode"].(string)
		m.Assets = append(m.Assets, Asset{
			Path:           a["path"].(string),
			SHA256:         a["sha256"].(string),
			Size:           size,
			Classification: a["classification"].(string),
			Mode:           mode,
		})
	}
	if md, ok := o["metadata"]; ok {
		m.Metadata = md.(map[string]any)
	}
	return m, nil
}

// integer returns the exact value of a JSON integer however it is spelled
// (12, 12.0, 1.2e1).
func integer(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, true
	}
	r, ok := new(big.Rat).SetString(string(n))
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	return r.Num().Int64(), true
}

// check applies the rules the schema cannot state.
func (m *Manifest) check() error {
	if !ValidVersion(m.Version) {
		return invalid("/version", "%q is not a semantic version", m.Version)
	}
	seen := map[string]int{}
	for i, d := range m.Dependencies {
		ptr := fmt.Sprintf("/dependencies/%d", i)
		dep, err := ParseDependency(d)
		if err != nil {
			return invalid(ptr, "%v", err)
		}
		if dep.PackageID == m.PackageID {
			return invalid(ptr, "package %s depends on itself", m.PackageID)
		}
		if j, ok := seen[dep.PackageID]; ok {
			return invalid(ptr, "%s is also named by /dependencies/%d; join the constraints with \",\"", dep.PackageID, j)
		}
		seen[dep.PackageID] = i
	}
	paths := pathSet{archive.Key(FileName): {name: FileName}}
	for i, a := range m.Assets {
		ptr := fmt.Sprintf("/assets/%d/path", i)
		if msg := checkPath(a.Path); msg != "" {
			return invalid(ptr, "%q %s", a.Path, msg)
		}
		if msg := paths.add(a.Path); msg != "" {
			return invalid(ptr, "%q %s", a.Path, msg)
		}
		if a.Mode != "" && m.SchemaVersion != SchemaVersionModes {
			return invalid(fmt.Sprintf("/assets/%d/mode", i), "an asset mode needs schema_version %q", SchemaVersionModes)
		}
	}
	return nil
}

// checkPath says what is wrong with an asset path, or returns "".
func checkPath(p string) string {
	switch {
	case p == "":
		return "is empty"
	case strings.ContainsRune(p, '\\'):
		return "contains a backslash"
	case p[0] == '/':
		return "is absolute"
	case len(p) >= 2 && p[1] == ':' && ('a' <= p[0]|0x20 && p[0]|0x20 <= 'z'):
		return "starts with a drive letter"
	case strings.HasSuffix(p, "/"):
		return "has a trailing slash"
	}
	for _, r := range p {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return fmt.Sprintf("contains control character %U", r)
		}
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return "has a .. element"
		}
	}
	if p == "." || path.Clean(p) != p {
		return "is not a clean relative path"
	}
	return ""
}

// pathEntry is a path seen among the assets (or implied as a directory by
// one), keyed by its folded form.
type pathEntry struct {
	name string
	dir  bool
}

type pathSet map[string]pathEntry

// add records a clean asset path and says how it clashes with one already
// recorded, or returns "".
func (s pathSet) add(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		parent := p[:i]
		k := archive.Key(parent)
		e, ok := s[k]
		switch {
		case !ok:
			s[k] = pathEntry{name: parent, dir: true}
		case !e.dir:
			return fmt.Sprintf("needs %q to be a directory, but it is a file", e.name)
		case e.name != parent:
			return fmt.Sprintf("has directory %q, which collides with %q when case-folded or normalised", parent, e.name)
		}
	}
	k := archive.Key(p)
	e, ok := s[k]
	switch {
	case !ok:
		s[k] = pathEntry{name: p}
		return ""
	case e.name == FileName:
		return "is the manifest itself, which is never an asset"
	case e.dir:
		return fmt.Sprintf("is a file, but %q is a directory", e.name)
	case e.name == p:
		return "is listed more than once"
	}
	return fmt.Sprintf("collides with %q when case-folded or normalised", e.name)
}

// hashed returns the manifest without metadata as a value for jcs.Marshal.
func (m *Manifest) hashed() map[string]any {
	deps := m.Dependencies
	if deps == nil {
		deps = []string{}
	}
	assets := make([]any, len(m.Assets))
	for i, a := range m.Assets {
		o := map[string]any{
			"path":           a.Path,
			"sha256":         a.SHA256,
			"size":           a.Size,
			"classification": a.Classification,
		}
		if a.Mode != "" { // absent stays absent: a 1.2 manifest hashes as it always did
			o["mode"] = a.Mode
		}
		assets[i] = o
	}
	return map[string]any{
		"schema_version": m.SchemaVersion,
		"package_id":     m.PackageID,
		"version":        m.Version,
		"package_type":   m.PackageType,
		"spec_id":        m.SpecID,
		"framework_id":   m.FrameworkID,
		"plane_id":       m.PlaneID,
		"dependencies":   deps,
		"assets":         assets,
	}
}

// Hash returns the manifest hash: "sha256:" + the lowercase hex SHA-256 of
// the canonical JSON of every member but metadata (see the package
// comment). It does not validate m; it fails only on what canonical JSON
// cannot hold (a string that is not UTF-8, a size beyond 2^53).
func (m *Manifest) Hash() (string, error) {
	b, err := jcs.Marshal(m.hashed())
	if err != nil {
		return "", fmt.Errorf("manifest hash: %w", err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Marshal returns manifest.json as cp-pkg writes it: members in schema
// order (schema_version, package_id, version, package_type, spec_id,
// framework_id, plane_id, dependencies, assets, metadata), asset members in
// the order path, sha256, size, classification, mode (when set), metadata keys sorted,
// indented by two spaces, no HTML escaping, and a final newline. Nil
// Dependencies and Assets are written as [], and metadata is omitted only
// when Metadata is nil. The output is stable, but it is not what the hash
// covers: Hash canonicalizes on its own. Marshal does not validate m;
// Parse(Marshal()) does.
func (m *Manifest) Marshal() ([]byte, error) {
	type out struct {
		SchemaVersion string   `json:"schema_version"`
		PackageID     string   `json:"package_id"`
		Version       string   `json:"version"`
		PackageType   string   `json:"package_type"`
		SpecID        string   `json:"spec_id"`
		FrameworkID   string   `json:"framework_id"`
		PlaneID       string   `json:"plane_id"`
		Dependencies  []string `json:"dependencies"`
		Assets        []Asset  `json:"assets"`
		Metadata      any      `json:"metadata,omitempty"` // a nil interface is omitted, an empty map is not
	}
	o := out{m.SchemaVersion, m.PackageID, m.Version, m.PackageType, m.SpecID, m.FrameworkID, m.PlaneID,
		m.Dependencies, m.Assets, nil}
	if o.Dependencies == nil {
		o.Dependencies = []string{}
	}
	if o.Assets == nil {
		o.Assets = []Asset{}
	}
	if m.Metadata != nil {
		o.Metadata = m.Metadata
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(o); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return buf.Bytes(), nil
}
