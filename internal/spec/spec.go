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
// version (default 1.0.0), status (active, draft, deprecated, retired;
// default active) and invariants are optional. The Python Control Plane
// v2's fields are kept: plane_id (the plane the spec's packages go to,
// checked against the plane by registration), tier (ho1, ho2 or ho3, any
// case), interfaces and acceptance (lists of strings or objects),
// non_goals (strings) and dependencies (see Refs). No other key is
// allowed. The decoded
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

	// CPv2's fields, kept.
	PlaneID      string   `json:"plane_id,omitempty" yaml:"plane_id"`
	Tier         string   `json:"tier,omitempty" yaml:"tier"`
	Interfaces   []any    `json:"interfaces,omitempty" yaml:"interfaces"`
	Acceptance   []any    `json:"acceptance,omitempty" yaml:"acceptance"`
	NonGoals     []string `json:"non_goals,omitempty" yaml:"non_goals"`
	Dependencies []any    `json:"dependencies,omitempty" yaml:"dependencies"`
}

// Statuses are the statuses a spec may have; draft is CPv2's.
var Statuses = []string{"active", "draft", "deprecated", "retired"}

// Error is an invalid spec; Code is SPEC_INVALID.
type Error struct{ Msg string }

func (e *Error) Error() string { return "spec manifest: " + e.Msg }

// Code returns SPEC_INVALID.
func (e *Error) Code() string { return "SPEC_INVALID" }

// Compiled on first use, not at package init: every binary links this package.
var (
	specRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^SPEC-[A-Z0-9-]+$`) })
	fmwkRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^FMWK-[A-Z0-9-]+$`) })
	// idRestRE() is what follows SPEC-, FMWK- or PKG- in one of our ids.
	idRestRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Z0-9-]+$`) })
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
	case !slices.Contains(Statuses, s.Status):
		return nil, &Error{fmt.Sprintf("status %q: want %s", s.Status, strings.Join(Statuses, ", "))}
	case len(s.Assets) == 0:
		return nil, &Error{"assets must list at least one pattern"}
	case s.Tier != "" && !slices.Contains([]string{"ho1", "ho2", "ho3"}, strings.ToLower(s.Tier)):
		return nil, &Error{fmt.Sprintf("tier %q: want ho1, ho2 or ho3", s.Tier)}
	}
	if _, err := s.Refs(); err != nil {
		return nil, err
	}
	for _, p := range s.Assets {
		if err := checkPattern(p); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// Ref is one of a spec's dependencies as read: Kind is RefSpec,
// RefFramework or RefPackage when it names one of our ids (ID, with a
// version Constraint in manifest.ParseDependency's grammar, "" for any),
// "" when it names something else (a library, a service), which is kept
// and not checked. Text is the dependency as written.
type Ref struct {
	Kind, ID, Constraint, Text string
}

// Kinds of Ref.
const (
	RefSpec      = "spec"
	RefFramework = "framework"
	RefPackage   = "package"
)

// Allows reports whether version meets the ref's constraint.
func (r Ref) Allows(version string) bool {
	d, err := manifest.ParseDependency("PKG-X@" + r.Constraint)
	if r.Constraint == "" {
		d, err = manifest.ParseDependency("PKG-X")
	}
	return err == nil && d.Allows(version)
}

// Refs reads the spec's dependencies. A string is "ID" or "ID@constraint"
// (SPEC-, FMWK- or PKG- ids; the constraint as a package dependency's), or
// anything else, which names none of ours. An object names its id by
// spec_id, framework_id, package_id or id, and may give a version
// constraint as version; an object naming none is kept unchecked. A
// dependency that begins like one of our ids but is not one, or whose
// constraint does not parse, is SPEC_INVALID.
func (s *Spec) Refs() ([]Ref, error) {
	var out []Ref
	for i, d := range s.Dependencies {
		var r Ref
		switch v := d.(type) {
		case string:
			r.Text = v
			r.ID, r.Constraint, _ = strings.Cut(strings.TrimSpace(v), "@")
		case map[string]any:
			if b, err := jcs.Marshal(v); err == nil {
				r.Text = string(b)
			} else {
				r.Text = fmt.Sprint(v)
			}
			for _, k := range []string{"spec_id", "framework_id", "package_id", "id"} {
				if id, ok := v[k].(string); ok {
					r.ID = id
					break
				}
			}
			if c, ok := v["version"]; ok {
				cs, ok := c.(string)
				if !ok {
					return nil, &Error{fmt.Sprintf("dependencies[%d]: version must be a string", i)}
				}
				r.Constraint = cs
			}
		default:
			return nil, &Error{fmt.Sprintf("dependencies[%d]: want a string or an object", i)}
		}
		for _, k := range []struct{ prefix, kind string }{{"SPEC-", RefSpec}, {"FMWK-", RefFramework}, {"PKG-", RefPackage}} {
			if !strings.HasPrefix(r.ID, k.prefix) {
				continue
			}
			r.Kind = k.kind
			if !idRestRE().MatchString(strings.TrimPrefix(r.ID, k.prefix)) {
				return nil, &Error{fmt.Sprintf("dependencies[%d] %q: %q is not a %s id", i, r.Text, r.ID, k.kind)}
			}
			if r.Constraint != "" {
				if _, err := manifest.ParseDependency("PKG-X@" + r.Constraint); err != nil {
					return nil, &Error{fmt.Sprintf("dependencies[%d] %q: version constraint %q: %v", i, r.Text, r.Constraint, err)}
				}
			}
		}
		if r.Kind == "" {
			r.ID, r.Constraint = "", ""
		}
		if r.Kind == RefSpec && r.ID == s.SpecID {
			return nil, &Error{fmt.Sprintf("dependencies[%d]: spec %s depends on itself", i, s.SpecID)}
		}
		out = append(out, r)
	}
	return out, nil
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
