// Package spec reads spec manifests: what a package implementing a spec may
// install, under which framework, and the invariants it keeps.
//
// A spec is a directory holding manifest.json or manifest.yaml (not both):
//
//	{"spec_id":"SPEC-001","framework_id":"FMWK-001","title":"Demo tools",
//	 "version":"1.0.0","status":"active",
//	 "assets":["lib/demo/**","config/demo.json"],"invariants":["..."]}
//
// spec_id, framework_id and assets (at least one) are required; title,
// version (default 1.0.0), status (active, deprecated, retired; default
// active) and invariants are optional. No other key is allowed. The decoded
// document must first be valid against schemas/spec_manifest.schema.json
// (keys exactly as spelled, no nulls, no duplicates), so the file the
// registry keeps is one that schema describes.
//
// Asset patterns are slash paths matched segment by segment with path.Match
// syntax (* ? [..] within a segment), and a whole segment ** matches any
// number of segments (including none).
package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/control-plane/cp/internal/schema"
	"github.com/control-plane/cp/pkg/jcs"
	"github.com/control-plane/cp/pkg/manifest"
	"github.com/control-plane/cp/schemas"
	"go.yaml.in/yaml/v3"
)

// SchemaName is the embedded schema of a spec manifest.
const SchemaName = "spec_manifest.schema.json"

var specSchema = sync.OnceValues(func() (*schema.Schema, error) {
	return schema.NewCompiler(schemas.FS, schemas.BaseURL).Compile(SchemaName)
})

// conforms checks the decoded document against the schema.
func conforms(doc any) error {
	s, err := specSchema()
	if err != nil {
		return &Error{fmt.Sprintf("compiling %s: %v", SchemaName, err)}
	}
	if problems := s.Validate(doc); len(problems) > 0 {
		p := problems[0]
		if p.Path == "" {
			p.Path = "/"
		}
		return &Error{fmt.Sprintf("%s: %s", p.Path, p.Message)}
	}
	return nil
}

// Spec is a parsed spec manifest.
type Spec struct {
	SpecID      string   `json:"spec_id" yaml:"spec_id"`
	FrameworkID string   `json:"framework_id" yaml:"framework_id"`
	Title       string   `json:"title,omitempty" yaml:"title"`
	Version     string   `json:"version" yaml:"version"`
	Status      string   `json:"status" yaml:"status"`
	Assets      []string `json:"assets" yaml:"assets"`
	Invariants  []string `json:"invariants" yaml:"invariants"`
}

// Error is an invalid spec; Code is SPEC_INVALID.
type Error struct{ Msg string }

func (e *Error) Error() string { return "spec manifest: " + e.Msg }

// Code returns SPEC_INVALID.
func (e *Error) Code() string { return "SPEC_INVALID" }

// Compiled on first use, not at package init: every binary links this package.
var (
	specRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^SPEC-[A-Z0-9-]+$`) })
	fmwkRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^FMWK-[A-Z0-9-]+$`) })
)

// Parse reads a spec manifest; yaml selects the YAML form.
func Parse(b []byte, isYAML bool) (*Spec, error) {
	var doc any
	var err error
	if isYAML {
		err = yaml.Unmarshal(b, &doc)
	} else {
		doc, err = jcs.Decode(b)
	}
	if err != nil {
		return nil, &Error{err.Error()}
	}
	if err := conforms(doc); err != nil {
		return nil, err
	}
	var s Spec
	if isYAML {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return nil, &Error{err.Error()}
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return nil, &Error{err.Error()}
		}
		if dec.More() {
			return nil, &Error{"trailing data after the JSON object"}
		}
	}
	if s.Version == "" {
		s.Version = "1.0.0"
	}
	if s.Status == "" {
		s.Status = "active"
	}
	if s.Invariants == nil {
		s.Invariants = []string{}
	}
	switch {
	case !specRE().MatchString(s.SpecID):
		return nil, &Error{fmt.Sprintf("spec_id %q must match %s", s.SpecID, specRE())}
	case !fmwkRE().MatchString(s.FrameworkID):
		return nil, &Error{fmt.Sprintf("framework_id %q must match %s", s.FrameworkID, fmwkRE())}
	case !manifest.ValidVersion(s.Version):
		return nil, &Error{fmt.Sprintf("version %q is not a semantic version", s.Version)}
	case !slices.Contains([]string{"active", "deprecated", "retired"}, s.Status):
		return nil, &Error{fmt.Sprintf("status %q: want active, deprecated or retired", s.Status)}
	case len(s.Assets) == 0:
		return nil, &Error{"assets must list at least one pattern"}
	}
	for _, p := range s.Assets {
		if err := checkPattern(p); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

func checkPattern(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return &Error{fmt.Sprintf("asset pattern %q must be a relative slash path", p)}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return &Error{fmt.Sprintf("asset pattern %q has an empty, . or .. segment", p)}
		}
		if seg != "**" {
			if _, err := path.Match(seg, ""); err != nil {
				return &Error{fmt.Sprintf("asset pattern %q: %v", p, err)}
			}
		}
	}
	return nil
}

// Covers reports whether a path is inside one of the spec's asset patterns.
func (s *Spec) Covers(p string) bool {
	for _, pat := range s.Assets {
		if Match(pat, p) {
			return true
		}
	}
	return false
}

// Match matches a slash path against a pattern (see the package doc).
func Match(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
