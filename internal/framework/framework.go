// Package framework reads framework documents: the markdown "law" that
// specs and packages answer to.
//
// # Our form
//
// A framework document of ours opens with a metadata block:
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
// framework_id, title and version are required; status is active, draft,
// deprecated or retired (default active). Keys are not repeated and no
// other key is allowed. Its invariants are the list items that start with
// MUST (optionally bold: **MUST**), the text after MUST; removing one
// between versions is a breaking change.
//
// # CPv2's forms
//
// A document without that block is read as the Python Control Plane v2
// wrote its frameworks (see cpv2.go): metadata from a "## Metadata" bullet
// list, bold lines ("**Version:** 1.0.0"), a "## Status" section, the
// "# FMWK-123: Title" heading and the file name ("FMWK-123_title.md"), in
// that order of precedence; defaults version 1.0.0, status active, title
// the id. Its invariants are every MUST statement: "[MUST]" / "[MUST NOT]"
// list items, list items and sentences holding the word MUST, and the rows
// of invariant tables. A document may state no invariants.
//
// In both forms every statement of the id must name the same id (a
// document that names two is refused), and a document that states none
// is refused.
package framework

import (
	"bufio"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/control-plane/cp/pkg/manifest"
)

// Framework is a parsed framework document.
type Framework struct {
	ID         string
	Title      string
	Version    string
	Status     string
	Invariants []string // in document order (see the package doc for their text)
	// Sources says where each of id, title, version and status was taken
	// from: a Form, or FormDefault.
	Sources map[string]string
	// Extra holds the other keys of a CPv2 "## Metadata" list (owner,
	// created, ...), kept for the record: the registry keeps the document.
	Extra map[string]string
	// Notes says what the reader decided beyond the plain reading: a
	// default taken, a version completed, forms that disagree and which won,
	// a document stating no invariants.
	Notes []string
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

// Parse reads a framework document whose file name is not known: ParseNamed
// with no name.
func Parse(doc []byte) (*Framework, error) { return ParseNamed("", doc) }

// ParseNamed reads a framework document; name is its file name (a path is
// fine: only its last element counts), the last place an id is taken from.
func ParseNamed(name string, doc []byte) (*Framework, error) {
	lines, err := splitLines(doc)
	if err != nil {
		return nil, err
	}
	if len(lines) > 0 && lines[0] == "---" {
		return parseOurs(name, lines)
	}
	if len(lines) > 0 {
		lines[0] = strings.TrimPrefix(lines[0], "\ufeff") // CPv2 documents saved by Windows editors
	}
	return parseCPv2(name, lines)
}

// splitLines splits doc into lines without their "\n" or "\r\n", refusing a
// line over 1 MiB.
func splitLines(doc []byte) ([]string, error) {
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{len(lines) + 1, err.Error()}
	}
	return lines, nil
}

// parseOurs reads a document of ours: the metadata block and MUST list
// items, exactly as before CPv2's forms were read; what the body states of
// the id (a heading, the file name, CPv2 metadata) must agree.
func parseOurs(name string, lines []string) (*Framework, error) {
	f := &Framework{Status: "active", Sources: map[string]string{}}
	line := 1
	seen := map[string]bool{}
	var stated []statement
	for {
		if line >= len(lines) {
			return nil, &Error{line, "metadata block is not closed with ---"}
		}
		l := lines[line]
		line++
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
			stated = append(stated, statement{fieldID, v, FormFrontMatter, line})
		case "title":
			f.Title = v
		case "version":
			f.Version = v
		case "status":
			f.Status = v
		default:
			return nil, &Error{line, fmt.Sprintf("unknown key %q", k)}
		}
		f.Sources[fieldOf(k)] = FormFrontMatter
	}
	body := lines[line:]
	for _, l := range body {
		if m := invariantRE().FindStringSubmatch(l); m != nil {
			f.Invariants = append(f.Invariants, normalize(m[1]))
		}
	}
	switch {
	case !idRE().MatchString(f.ID):
		return nil, &Error{0, fmt.Sprintf("framework_id %q must match %s", f.ID, idRE())}
	case f.Title == "":
		return nil, &Error{0, "title is required"}
	case !manifest.ValidVersion(f.Version):
		return nil, &Error{0, fmt.Sprintf("version %q is not a semantic version", f.Version)}
	case !slices.Contains(Statuses, f.Status):
		return nil, &Error{0, fmt.Sprintf("status %q: want %s", f.Status, strings.Join(Statuses, ", "))}
	}
	if _, ok := f.Sources[fieldStatus]; !ok {
		f.Sources[fieldStatus] = FormDefault
	}
	sc, err := scan(body, line)
	if err != nil {
		return nil, err
	}
	stated = append(stated, sc.statements...)
	if fn, err := fileNameID(name); err != nil {
		return nil, err
	} else if fn != nil {
		stated = append(stated, *fn)
	}
	if _, err := agreedID(stated); err != nil {
		return nil, err
	}
	for _, st := range sc.statements {
		if (st.field == fieldVersion || st.field == fieldStatus) && !strings.EqualFold(st.value, fieldValue(f, st.field)) {
			f.Notes = append(f.Notes, fmt.Sprintf("%s %q stated by %s is not read: the metadata block says %q", st.field, st.value, st.where(), fieldValue(f, st.field)))
		}
	}
	return f, nil
}

// Statuses are the statuses a framework may have; draft is CPv2's.
var Statuses = []string{"active", "draft", "deprecated", "retired"}

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
