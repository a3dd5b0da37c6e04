package manifest

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// ValidVersion reports whether v is a full semantic version without a
// leading "v" or build metadata: "1.2.0", "2.0.0-rc.1". It is the version
// rule for packages, signatures, frameworks and specs alike.
func ValidVersion(v string) bool {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return false
	}
	return semver.IsValid("v"+v) && semver.Canonical("v"+v) == "v"+v
}

// CompareVersions returns -1, 0 or +1 as a is lower than, equal to or
// higher than b in semver precedence. A string that is not a version (see
// the package comment) is lower than every version and equal to every other
// such string.
func CompareVersions(a, b string) int {
	return semver.Compare(vPrefix(a), vPrefix(b))
}

// vPrefix makes v an x/mod/semver version, or "" if it is not one of ours.
func vPrefix(v string) string {
	if !ValidVersion(v) {
		return ""
	}
	return "v" + v
}

// Dependency is a parsed entry of a manifest's dependencies.
type Dependency struct {
	PackageID  string
	Constraint string // "" admits any version
}

// String returns the dependency as written in a manifest.
func (d Dependency) String() string {
	if d.Constraint == "" {
		return d.PackageID
	}
	return d.PackageID + "@" + d.Constraint
}

// ParseDependency parses "PKG-X" or "PKG-X@constraint" (see the package
// comment for the grammar).
func ParseDependency(s string) (Dependency, error) {
	id, c, hasC := strings.Cut(s, "@")
	if !validID(id, "PKG-") {
		return Dependency{}, fmt.Errorf("dependency %q: %q is not a package id (PKG-[A-Z0-9-]+)", s, id)
	}
	if hasC {
		if _, err := parseConstraint(c); err != nil {
			return Dependency{}, fmt.Errorf("dependency %q: %v", s, err)
		}
	}
	return Dependency{PackageID: id, Constraint: c}, nil
}

// ValidPackageID reports whether id is a package id: PKG- and one or more
// of A-Z 0-9 -.
func ValidPackageID(id string) bool { return validID(id, "PKG-") }

// validID reports whether id is prefix followed by one or more of A-Z 0-9 -.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Allows reports whether version satisfies d's constraint. A string that is
// not a version, or a constraint that does not parse, allows nothing.
func (d Dependency) Allows(version string) bool {
	v := vPrefix(version)
	if v == "" {
		return false
	}
	if d.Constraint == "" {
		return true
	}
	cs, err := parseConstraint(d.Constraint)
	if err != nil {
		return false
	}
	for _, c := range cs {
		if !c.allows(v) {
			return false
		}
	}
	return true
}

// clause is one comparison: op and an x/mod/semver version ("v1.2.3").
type clause struct {
	op, v string
}

// ops lists the operators, longer ones first so that ">=" is not read as ">".
var ops = []string{">=", "<=", ">", "<", "=", "^", "~"}

func parseConstraint(c string) ([]clause, error) {
	if c == "" {
		return nil, errors.New("empty constraint after @")
	}
	var out []clause
	for _, part := range strings.Split(c, ",") {
		var cl clause
		for _, op := range ops {
			if rest, ok := strings.CutPrefix(part, op); ok {
				cl = clause{op: op, v: rest}
				break
			}
		}
		if cl.op == "" {
			return nil, fmt.Errorf("constraint clause %q does not start with one of %s", part, strings.Join(ops, " "))
		}
		if !ValidVersion(cl.v) {
			return nil, fmt.Errorf("constraint clause %q: %q is not a semantic version", part, cl.v)
		}
		cl.v = "v" + cl.v
		out = append(out, cl)
	}
	return out, nil
}

func (c clause) allows(v string) bool {
	n := semver.Compare(v, c.v)
	switch c.op {
	case ">=":
		return n >= 0
	case "<=":
		return n <= 0
	case ">":
		return n > 0
	case "<":
		return n < 0
	case "=":
		return n == 0
	}
	return n >= 0 && semver.Compare(v, upper(c.op, c.v)) < 0
}

// upper returns the exclusive upper bound of ^v or ~v: the lowest
// pre-release of the next major, minor or patch version ("v2.0.0-0"), so
// that no pre-release of the bound is admitted.
func upper(op, v string) string {
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	parts := strings.SplitN(core, ".", 3)
	i := 1 // ~: next minor
	if op == "^" {
		i = 0
		for i < 2 && parts[i] == "0" {
			i++
		}
	}
	parts[i] = increment(parts[i])
	for j := i + 1; j < 3; j++ {
		parts[j] = "0"
	}
	return "v" + strings.Join(parts, ".") + "-0"
}

// increment adds one to a decimal string of any length.
func increment(d string) string {
	b := []byte(d)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}
