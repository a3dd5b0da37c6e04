// Package framework reads framework documents: the markdown "law" that
// specs and packages answer to.
//
// A framework document is markdown that opens with a metadata block:
//
//	---
//	framework_id: FMWK-001
//	title: Package governance
//	version: 1.0.0
//	status: active
//	---
//	# Package governance
//	- MUST every package name the spec it implements.
//	- SHOULD keep packages small.
//
// framework_id, title and version are required; status is active,
// deprecated or retired (default active). Keys are not repeated and no
// other key is allowed. Its invariants are the list items that start with
// MUST (optionally bold: **MUST**); removing one between versions is a
// breaking change.
package framework

import (
	"bufio"
	"fmt"
	"github.com/control-plane/cp/pkg/manifest"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Framework is a parsed framework document.
type Framework struct {
	ID         string
	Title      string
	Version    string
	Status     string
	Invariants []string // normalized text after MUST, in document order
}

// Error is an invalid document; Code is FRAMEWORK_INVALID.
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("framework document line %d: %s", e.Line, e.Msg)
	}
	return "framework document: " + e.Msg
}

// Code returns FRAMEWORK_INVALID.
func (e *Error) Code() string { return "FRAMEWORK_INVALID" }

// Compiled on first use, not at package init: every binary links this package.
var (
	idRE        = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^FMWK-[A-Z0-9-]+$`) })
	invariantRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*[-*]\s+(?:\*\*MUST\*\*|MUST)\s+(.+)$`) })
)

// Parse reads a framework document.
func Parse(doc []byte) (*Framework, error) {
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	f := &Framework{Status: "active"}
	line := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return strings.TrimRight(sc.Text(), "\r"), true
	}
	if l, ok := next(); !ok || l != "---" {
		return nil, &Error{1, "must open with a --- metadata block"}
	}
	seen := map[string]bool{}
	for {
		l, ok := next()
		if !ok {
			return nil, &Error{line, "metadata block is not closed with ---"}
		}
		if l == "---" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, &Error{line, fmt.Sprintf("want key: value, got %q", l)}
		}
		if seen[k] {
			return nil, &Error{line, fmt.Sprintf("key %s repeated", k)}
		}
		seen[k] = true
		switch k {
		case "framework_id":
			f.ID = v
		case "title":
			f.Title = v
		case "version":
			f.Version = v
		case "status":
			f.Status = v
		default:
			return nil, &Error{line, fmt.Sprintf("unknown key %q", k)}
		}
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		if m := invariantRE().FindStringSubmatch(l); m != nil {
			f.Invariants = append(f.Invariants, normalize(m[1]))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{line, err.Error()}
	}
	switch {
	case !idRE().MatchString(f.ID):
		return nil, &Error{0, fmt.Sprintf("framework_id %q must match %s", f.ID, idRE())}
	case f.Title == "":
		return nil, &Error{0, "title is required"}
	case !manifest.ValidVersion(f.Version):
		return nil, &Error{0, fmt.Sprintf("version %q is not a semantic version", f.Version)}
	case !slices.Contains([]string{"active", "deprecated", "retired"}, f.Status):
		return nil, &Error{0, fmt.Sprintf("status %q: want active, deprecated or retired", f.Status)}
	}
	return f, nil
}

func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

// Removed returns the invariants of old that next no longer states: each is
// a breaking change.
func Removed(old, next *Framework) []string {
	var out []string
	for _, inv := range old.Invariants {
		if !slices.Contains(next.Invariants, inv) {
			out = append(out, inv)
		}
	}
	return out
}
